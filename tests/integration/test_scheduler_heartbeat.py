"""The scheduler's liveness: its loop touches HEARTBEAT_FILE once a tick, and the
chart's exec probe (`python -m conveyor.worker.healthcheck`) reads it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.support.processes import Stack, wait_until


def healthcheck(heartbeat: Path, max_age: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor.worker.healthcheck", "--max-age", str(max_age)],
        env={**os.environ, "HEARTBEAT_FILE": str(heartbeat)},
        capture_output=True,
        text=True,
    )


def test_the_scheduler_loop_beats_and_the_probe_reads_it(stack: Stack, tmp_path: Path) -> None:
    heartbeat = tmp_path / "scheduler.heartbeat"
    assert healthcheck(heartbeat, 60).returncode == 1  # no file yet: unhealthy
    scheduler = stack.start_scheduler(
        HEARTBEAT_FILE=str(heartbeat), RECONCILE_INTERVAL_SECONDS="0.5", METRICS_PORT="0"
    )
    try:
        wait_until(heartbeat.exists, 30, what="the scheduler's first heartbeat")
        first = heartbeat.stat().st_mtime
        wait_until(lambda: heartbeat.stat().st_mtime > first, 10, what="a second beat")
        assert healthcheck(heartbeat, 60).returncode == 0
    finally:
        scheduler.stop()
        stack.procs.remove(scheduler)
    time.sleep(1.5)
    stale = healthcheck(heartbeat, 1)  # the loop stopped: the beat goes stale
    assert stale.returncode == 1 and "heartbeat" in stale.stderr
