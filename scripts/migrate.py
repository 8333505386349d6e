"""Apply database migrations: `python scripts/migrate.py`.

A one-off admin process. It holds a Postgres advisory lock, so concurrent runs
are safe: each one exits 0 and the schema is applied once.
"""

from __future__ import annotations

from conveyor.common.db import make_sync_engine
from conveyor.common.logging import configure_logging, get_logger
from conveyor.common.migrate import upgrade_to_head
from conveyor.common.settings import Settings, load_settings


def main() -> None:
    settings = load_settings(Settings)
    configure_logging(settings.log_level, settings.log_format)
    log = get_logger("conveyor.migrate")
    engine = make_sync_engine(settings, pool_size=1)
    try:
        before, after = upgrade_to_head(engine)
    finally:
        engine.dispose()
    if before == after:
        log.info("schema already at head", revision=after)
    else:
        log.info("schema migrated", from_revision=before, to_revision=after)


if __name__ == "__main__":
    main()
