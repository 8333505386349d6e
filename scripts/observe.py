"""`make observe`: Debian's Prometheus against the `make up` stack, in the foreground.

It scrapes the API, every worker process and the scheduler, at the addresses
`make up` writes to .data/run/scrape-targets.json (Prometheus's file_sd format,
watched: started before `make up`, or with another WORKERS, it follows), loads
Conveyor's alert rules, and keeps its data in .data/prometheus/. Ctrl-C or
SIGTERM stops it, with nothing left running.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lifecycle import dies_with_parent, ignore_stop_signals, stop_on_signals
from procfile import ROOT

DATA = Path(os.environ.get("CONVEYOR_DATA_DIR", ROOT / ".data")).resolve()
TARGETS = DATA / "run" / "scrape-targets.json"  # written by scripts/run_stack.py
HOME = DATA / "prometheus"
RULES = ROOT / "deploy" / "prometheus" / "conveyor-rules.yml"
# Locally a few seconds, so a change shows at once (a cluster's default is 30 s or more).
INTERVAL = "5s"
INSTALL_HINT = (
    "make observe: prometheus is not installed (Debian/Ubuntu: apt-get install prometheus)"
)


def say(message: str) -> None:
    print(f"make observe: {message}", flush=True)


def fail(message: str) -> None:
    print(f"make observe: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def listen_port() -> int:
    raw = os.environ.get("PROMETHEUS_PORT", "9090")
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        fail(f"PROMETHEUS_PORT must be a port number, got {raw!r}")
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", int(raw)))
        except OSError:
            fail(f"port {raw} is in use; set PROMETHEUS_PORT to another port")
    return int(raw)


def config() -> dict[str, object]:
    """One scrape job; each target's `job` label (conveyor-api, -worker,
    -scheduler) comes from the targets file, as the chart's scrape jobs name them."""
    return {
        "global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": "conveyor",
                "file_sd_configs": [{"files": [str(TARGETS)], "refresh_interval": INTERVAL}],
            }
        ],
    }


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            fail(f"prometheus exited {proc.returncode}:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    fail(f"prometheus was not ready within {timeout:.0f}s (its log: {log})")


def main() -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        print(INSTALL_HINT, file=sys.stderr, flush=True)
        raise SystemExit(1)
    port = listen_port()
    url = f"http://127.0.0.1:{port}"
    HOME.mkdir(parents=True, exist_ok=True)
    TARGETS.parent.mkdir(parents=True, exist_ok=True)  # file_sd watches this directory
    # JSON is YAML: no YAML library needed in the runner.
    (HOME / "prometheus.yml").write_text(json.dumps(config(), indent=2) + "\n")
    log = HOME / "prometheus.log"
    proc: subprocess.Popen[bytes] | None = None
    stop_on_signals()
    try:
        with log.open("wb") as out:
            # Its own session: Ctrl-C reaches only us, and we stop it.
            proc = subprocess.Popen(
                dies_with_parent(
                    [
                        binary,
                        f"--config.file={HOME / 'prometheus.yml'}",
                        f"--storage.tsdb.path={HOME / 'data'}",
                        f"--web.listen-address=127.0.0.1:{port}",
                    ]
                ),
                cwd=HOME,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        wait_ready(url, proc, log)
        print(f"Prometheus: {url}", flush=True)
        if not TARGETS.is_file():
            say(f"no `make up` stack yet: its targets appear once it writes {TARGETS}")
        say(
            f"targets {url}/targets, alerts {url}/alerts; data in {HOME}, log in {log}; "
            "Ctrl-C stops it"
        )
        while proc.poll() is None:
            time.sleep(0.2)
        fail(f"prometheus exited {proc.returncode} (its log: {log})")
    except KeyboardInterrupt:
        pass  # the signal that stops us; `finally` does the stopping
    finally:
        ignore_stop_signals()
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        say("stopped")


if __name__ == "__main__":
    main()
