"""`python -m conveyor.api.wait_for_schema`: exit 0 once migrations are at head.

An init container runs this, so API pods wait for the schema instead of
crash-looping while the migration Job runs.
"""

from __future__ import annotations

import argparse
import time

from conveyor.common.db import make_sync_engine
from conveyor.common.logging import configure_logging, get_logger
from conveyor.common.migrate import current_revision, head_revision
from conveyor.common.settings import Settings, load_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait")
    args = parser.parse_args()
    settings = load_settings(Settings)
    configure_logging(settings.log_level, settings.log_format)
    log = get_logger("conveyor.wait_for_schema")
    engine = make_sync_engine(settings, pool_size=1)
    head = head_revision()
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            current = current_revision(engine)
        except Exception as exc:
            current = None
            log.info("database not reachable yet", error=type(exc).__name__)
        if current == head:
            log.info("schema is at head", revision=head)
            return
        if time.monotonic() > deadline:
            log.error("schema not at head in time", current=current, head=head)
            raise SystemExit(1)
        log.info("waiting for migrations", current=current, head=head)
        time.sleep(2)


if __name__ == "__main__":
    main()
