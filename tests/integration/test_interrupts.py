"""Ctrl-C and SIGTERM stop every long-running command within seconds, at any
moment, and no process it started outlives it (issue 15).

Ctrl-C is SIGINT to the command's process group, as a terminal sends it;
SIGTERM goes to `make` alone, as `kill PID` sends it. Each command's whole
process tree is recorded while it runs, so a process that detached into its
own session, or was orphaned, still counts.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.commands import Command
from tests.support.engines import ROOT, free_port
from tests.support.processes import Stack

STOP_WITHIN = 10.0  # seconds: "within a few seconds"

MakeFn = Callable[..., Command]


@pytest.fixture
def workdir() -> Iterator[Path]:
    # World-traversable: as root, embedded Postgres runs as nobody.
    base = Path(tempfile.mkdtemp(prefix="conveyor-interrupt-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def make(workdir: Path) -> Iterator[MakeFn]:
    started: list[Command] = []

    def run(*args: str, **env: str) -> Command:
        clean = {
            k: v
            for k, v in os.environ.items()
            if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "MAKEFLAGS"}
        }
        command = Command(["make", *args], ROOT, {**clean, **env}, workdir / f"{args[0]}.log")
        started.append(command)
        return command

    yield run
    for command in started:
        command.kill()  # only matters when a test failed midway


def stop(command: Command, how: str) -> float:
    getattr(command, how)()
    seconds = command.stopped_within(STOP_WITHIN)
    print(f"{how}: every process gone after {seconds:.1f}s")
    return seconds


def make_up_env(workdir: Path) -> dict[str, str]:
    return {
        "PORT": str(free_port()),
        "CONVEYOR_DATA_DIR": str(workdir / "data"),
        "EMBEDDED_POSTGRES_PORT": str(free_port()),
        "EMBEDDED_REDIS_PORT": str(free_port()),
    }


@pytest.mark.parametrize(
    ("moment", "how"),
    [
        ("embedded PostgreSQL at", "ctrl_c"),  # mid start-up: Redis, migrations still to come
        (r"^API key: ", "sigterm"),  # running
        (r"^API key: ", "ctrl_c"),
    ],
)
def test_make_up(make: MakeFn, workdir: Path, moment: str, how: str) -> None:
    command = make("up", **make_up_env(workdir))
    command.wait_for(moment, 120)
    stop(command, how)
    assert "make up: stopped" in command.output()


def test_make_demo_scaling_ctrl_c_mid_step(make: MakeFn, workdir: Path) -> None:
    out = workdir / "demo"
    command = make("demo-scaling", f"ARGS=--smoke --out {out}")
    command.wait_for_process(r"conveyor\.worker$", 120)  # the first step's worker
    command.wait_for(r"cpu: 1 worker", 60)  # its progress bar: the step runs
    stop(command, "ctrl_c")
    assert not (out / "scaling.png").exists()  # stopped, not run to the end


def test_make_bench_sigterm_mid_measurement(make: MakeFn, workdir: Path) -> None:
    out = workdir / "bench.json"
    command = make("bench", f"ARGS=--smoke --out {out}")
    command.wait_for(r"^bench: api_submit \.\.\.", 120)
    command.wait_for_process(r"bench\.baseline_api", 60)  # both APIs up, wrk about to run
    stop(command, "sigterm")
    assert not out.exists()


@pytest.mark.parametrize("how", ["ctrl_c", "sigterm"])
def test_make_loadtest(make: MakeFn, stack: Stack, how: str, workdir: Path) -> None:
    key = stack.create_key(f"interrupt-{how}")
    command = make(
        "loadtest",
        CONVEYOR_URL=stack.api_url,
        CONVEYOR_API_KEY=key,
        CONVEYOR_DATA_DIR=str(workdir),
        LOCUST_USERS="2",
        LOCUST_RUN_TIME="120s",
    )
    command.wait_for_process(r"-m locust", 60)
    command.wait_for(r"Ramping to 2 users|All users spawned", 60)
    stop(command, how)
    assert "make loadtest: HTML report at" in command.output()


def test_make_test_sigterm_during_the_scaling_demo(make: MakeFn) -> None:
    """The case that leaked a whole stack: SIGTERM while the demo's stack runs."""
    command = make(
        "test",
        PYTEST_ADDOPTS="tests/integration/test_demo_scaling.py",
        CONVEYOR_TEST_ENGINES="embedded",
    )
    command.wait_for_process(r"conveyor\.worker$", 180)
    stop(command, "sigterm")
