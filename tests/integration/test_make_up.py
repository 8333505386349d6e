"""`make up` as a new user runs it: the README's quickstart works verbatim,
data survives a restart, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.commands import Command
from tests.support.engines import ROOT, free_port
from tests.support.make_up import QUICKSTART_PORT, check_quickstart, port_is_free
from tests.support.processes import wait_until


def make_up(data_dir: Path, port: int, workers: int | str = 1) -> Command:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}
    }
    env.update(
        PORT=str(port),
        CONVEYOR_DATA_DIR=str(data_dir),
        WORKERS=str(workers),
        EMBEDDED_POSTGRES_PORT=str(free_port()),
        EMBEDDED_REDIS_PORT=str(free_port()),
    )
    log = data_dir.parent / f"make-up-{port}.log"
    return Command(["make", "up"], ROOT, env, log)


def api_lines(stack: Command) -> tuple[str, str]:
    stack.wait_for(r"^API key: \S+$", 120)
    found = re.search(r"^API: (\S+)\nAPI key: (\S+)$", stack.output(), re.M)
    assert found, stack.output()[-3000:]
    return found.group(1), found.group(2)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # World-traversable: as root, the embedded Postgres runs as nobody.
    base = Path(tempfile.mkdtemp(prefix="conveyor-make-up-"))
    base.chmod(0o755)
    yield base / "data"
    shutil.rmtree(base, ignore_errors=True)


def test_make_up_quickstart_restart_and_ctrl_c(data_dir: Path) -> None:
    port_is_free(QUICKSTART_PORT)
    stack = make_up(data_dir, QUICKSTART_PORT)
    try:
        url, key = api_lines(stack)
        assert url == f"http://127.0.0.1:{QUICKSTART_PORT}"
        check_quickstart(data_dir.parent, key)
        stack.ctrl_c()
        seconds = stack.stopped_within(15)
    finally:
        stack.kill()
    print(f"Ctrl-C to quiet: {seconds:.1f}s")
    assert "make up: stopped" in stack.output()

    # Data survives: the old key still works after a restart on the same data dir.
    again = make_up(data_dir, free_port())
    try:
        url, _ = api_lines(again)
        listed = subprocess.run(
            ["curl", "-sf", f"{url}/v1/jobs", "-H", f"Authorization: Bearer {key}"],
            capture_output=True,
            text=True,
        )
        assert listed.returncode == 0 and '"kind":"hash"' in listed.stdout
        again.ctrl_c()
        again.stopped_within(15)
    finally:
        again.kill()


def test_make_up_runs_worker_pools_and_a_bad_workers_value_fails_fast(data_dir: Path) -> None:
    """`make up WORKERS=cpu:2,io:1`: a supervisord program per pool, each process
    serving its pool's queues, as /v1/stats counts them."""
    bad = make_up(data_dir, free_port(), workers="cpu:2,gpu:1")
    try:
        assert bad.stopped_within(30) >= 0
    finally:
        bad.kill()
    assert bad.popen.returncode != 0
    assert "WORKERS entry 'gpu:1' names gpu, which no kind is routed to" in bad.output()

    stack = make_up(data_dir, free_port(), workers="cpu:2,io:1")
    try:
        url, key = api_lines(stack)
        assert "no worker serves queue 'default'" in stack.output()

        def pools() -> dict[str, int] | None:
            done = subprocess.run(
                ["curl", "-sf", f"{url}/v1/stats", "-H", f"Authorization: Bearer {key}"],
                capture_output=True,
                text=True,
            )
            found = json.loads(done.stdout)["pools"] if done.returncode == 0 else None
            return found if found == {"cpu": 2, "io": 1} else None

        wait_until(pools, 60, what="two cpu workers and one io worker online")
        stack.ctrl_c()
        stack.stopped_within(20)
    finally:
        stack.kill()
