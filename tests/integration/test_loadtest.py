"""`make loadtest`'s runner drives real load through Locust and writes its report."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from tests.support.commands import run_to_end
from tests.support.jobs import list_all
from tests.support.processes import ROOT, Stack


def test_locust_headless_submits_and_reports(stack: Stack, tmp_path: Path) -> None:
    key = stack.create_key(f"locust-{uuid.uuid4().hex[:6]}")
    env = {
        **os.environ,
        "CONVEYOR_URL": stack.api_url,
        "CONVEYOR_API_KEY": key,
        "CONVEYOR_DATA_DIR": str(tmp_path),
        "LOCUST_USERS": "4",
        "LOCUST_SPAWN_RATE": "4",
        "LOCUST_RUN_TIME": "6s",
        "LOADTEST_SLEEP_MS": "20",
        "LOADTEST_HASH_ITERATIONS": "100",
        "LOADTEST_PRIMES_LIMIT": "1000",
    }
    done = run_to_end(["python", "scripts/loadtest/run.py"], timeout=120, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "POST /v1/jobs [sleep]" in done.stdout + done.stderr
    report = tmp_path / "loadtest" / "report.html"
    assert report.exists() and "Locust" in report.read_text()
    with stack.client(key) as client:
        kinds = {job["kind"] for job in list_all(client)}
    assert {"sleep", "hash"} <= kinds


def test_bad_mix_is_a_clear_error(stack: Stack) -> None:
    env = {
        **os.environ,
        "CONVEYOR_URL": stack.api_url,
        "CONVEYOR_API_KEY": "cvk_x_y",
        "LOADTEST_MIX": "sleep=lots",
        "LOCUST_RUN_TIME": "1s",
    }
    done = run_to_end(["python", "scripts/loadtest/run.py"], timeout=60, cwd=ROOT, env=env)
    assert done.returncode != 0
    assert "LOADTEST_MIX" in done.stdout + done.stderr
