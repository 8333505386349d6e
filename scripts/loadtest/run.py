"""`make loadtest`: Locust, headless, against the local stack or any URL.

Uses CONVEYOR_URL and CONVEYOR_API_KEY when set; otherwise the URL and the dev
key that `make up` left in .data/run/. Prints Locust's stats and writes its
HTML report to .data/loadtest/report.html.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lifecycle import stop_on_signals

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("CONVEYOR_DATA_DIR", ROOT / ".data"))
RUN = DATA / "run"


def main() -> None:
    url = os.environ.get("CONVEYOR_URL") or _read(RUN / "api-url")
    key = os.environ.get("CONVEYOR_API_KEY") or _read(RUN / "api-key")
    if not url or not key:
        raise SystemExit(
            "make loadtest: start `make up` first, or set CONVEYOR_URL and CONVEYOR_API_KEY"
        )
    report = DATA / "loadtest" / "report.html"
    report.parent.mkdir(parents=True, exist_ok=True)
    env = {
        "LOCUST_USERS": "20",
        "LOCUST_SPAWN_RATE": "5",
        "LOCUST_RUN_TIME": "60s",
        **os.environ,
        "CONVEYOR_URL": url,
        "CONVEYOR_API_KEY": key,
    }
    print(f"make loadtest: {env['LOCUST_USERS']} users against {url} for {env['LOCUST_RUN_TIME']}")
    stop_on_signals()
    locust = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(Path(__file__).with_name("locustfile.py")),
            "--headless",
            "--host",
            url,
            "--html",
            str(report),
            "--only-summary",
        ],
        env=env,
    )
    try:
        code = locust.wait()
    except KeyboardInterrupt:
        # Ctrl-C reached Locust too; SIGTERM to us did not. Either way Locust
        # stops its users, prints its summary and writes the report.
        locust.send_signal(signal.SIGTERM)
        try:
            code = locust.wait(10)
        except subprocess.TimeoutExpired:
            locust.kill()
            code = locust.wait()
    print(f"make loadtest: HTML report at {report}")
    raise SystemExit(code)


def _read(path: Path) -> str | None:
    return path.read_text().strip() if path.exists() else None


if __name__ == "__main__":
    main()
