"""The scheduler counts in memory even when its environment names the worker's
multiprocess directory (one environment for every process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

COUNT_ONE_REQUEUE = """
from conveyor.worker.metrics_server import use_single_process_mode
from conveyor.worker.reconciler import reconciler_metrics

use_single_process_mode()  # before prometheus_client's first import, as the scheduler does
from prometheus_client import generate_latest

metrics = reconciler_metrics()
metrics.leases_requeued.inc()
print(generate_latest(metrics.registry).decode())
"""


def test_an_inherited_multiprocess_dir_is_ignored(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", COUNT_ONE_REQUEUE], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "conveyor_reconciler_leases_requeued_total 1.0" in done.stdout.splitlines()
    assert "conveyor_reconciler_leases_failed_total 0.0" in done.stdout.splitlines()
    assert list(tmp_path.iterdir()) == []  # nothing written to the worker's directory
