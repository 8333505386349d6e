"""`python -m conveyor.worker.healthcheck`: exit 0 while a heartbeat file is fresh.

For exec probes: the worker's event loop touches its file every 5 s, the
scheduler's loop once a tick (HEARTBEAT_FILE names the file for both).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

DEFAULT_FILE = "/tmp/conveyor-worker.heartbeat"  # noqa: S108


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-age", type=float, default=60, help="seconds")
    args = parser.parse_args()
    path = os.environ.get("HEARTBEAT_FILE", DEFAULT_FILE)
    try:
        age = time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        print(f"unhealthy: no heartbeat file {path}", file=sys.stderr)
        raise SystemExit(1) from None
    if age > args.max_age:
        print(f"unhealthy: heartbeat {age:.0f}s old", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
