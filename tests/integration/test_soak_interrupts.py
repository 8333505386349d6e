"""`make soak` stopped by Ctrl-C or SIGTERM mid-run, in the middle of a fault
included, leaves no process behind (the style of test_interrupts.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.commands import Command
from tests.support.engines import ROOT

STOP_WITHIN = 20.0  # a worker in its shutdown grace (5 s in the soak) and Postgres


@pytest.fixture
def workdir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="conveyor-soak-interrupt-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("how", ["ctrl_c", "sigterm"])
def test_make_soak_stops_everything_mid_run(workdir: Path, how: str) -> None:
    out, chart = workdir / "soak.json", workdir / "soak.png"
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "MAKEFLAGS"}
    }
    command = Command(
        ["make", "soak", "SOAK_MINUTES=1", f"ARGS=--out {out} --chart {chart}"],
        ROOT,
        clean,
        workdir / "soak.log",
    )
    try:
        command.wait_for_process(r"conveyor\.worker\.scheduler", 180)
        command.wait_for(r"^soak: fault at", 240)  # load running, the first fault under way
        getattr(command, how)()
        print(f"{how}: every process gone after {command.stopped_within(STOP_WITHIN):.1f}s")
    finally:
        command.kill()
    assert not out.exists()  # stopped, not run to the end
    assert any("redis-server" in cmd for cmd in command.seen.values())  # engines were watched
