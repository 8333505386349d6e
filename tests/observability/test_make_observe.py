"""`make observe` as a person runs it beside `make up`: Debian's Prometheus
finds every process of the stack (two workers here) and loads Conveyor's rule
groups; Ctrl-C leaves nothing running. Without prometheus on PATH it says how
to install it and fails. And `make up` says where the metrics are.

Needs Debian's `prometheus` package: without it this tier fails, never skips."""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.observability.prometheus import prometheus_binary
from tests.support.commands import Command, run_to_end
from tests.support.engines import ROOT, free_port
from tests.support.make_up import make_up_command, port_is_free

pytestmark = pytest.mark.observability

WORKERS = 2
# `make up`'s fixed metrics ports (scripts/run_stack.py): the workers' and the scheduler's.
WORKER_PORTS = [9800 + n for n in range(WORKERS)]
SCHEDULER_PORT = 9790
RULES = ROOT / "deploy" / "prometheus" / "conveyor-rules.yml"


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    # World-traversable: as root, the embedded Postgres runs as nobody.
    base = Path(tempfile.mkdtemp(prefix="conveyor-observe-"))
    base.chmod(0o755)
    yield base / "data"
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(data_dir: Path) -> Iterator[tuple[Command, int]]:
    if prometheus_binary() is None:
        pytest.fail("prometheus is not installed: apt-get install prometheus", pytrace=False)
    for port in [*WORKER_PORTS, SCHEDULER_PORT]:
        port_is_free(port)  # another `make up` would answer in our place
    api_port = free_port()
    up = make_up_command(data_dir, api_port, workers=WORKERS)
    try:
        up.wait_for(r"^Metrics: ", 120)
        yield up, api_port
        up.ctrl_c()
        up.stopped_within(20)
    finally:
        up.kill()


def test_make_up_prints_where_the_metrics_are(stack: tuple[Command, int]) -> None:
    up, api_port = stack
    found = re.search(r"^API key: \S+\nMetrics: (.+)$", up.output(), re.M)
    assert found, up.output()[-3000:]
    workers = " ".join(f"http://127.0.0.1:{p}/metrics" for p in WORKER_PORTS)
    assert found.group(1) == (
        f"API http://127.0.0.1:{api_port}/metrics, workers {workers}, "
        f"scheduler http://127.0.0.1:{SCHEDULER_PORT}/metrics"
    )
    # Each URL it prints serves Prometheus text.
    for url in re.findall(r"http://\S+/metrics", found.group(1)):
        body = httpx.get(url, timeout=10).text
        assert "# TYPE " in body, (url, body[:300])


def targets(url: str) -> dict[str, list[tuple[str, str]]]:
    """{job: [(instance, health)]} of the active targets."""
    body = httpx.get(f"{url}/api/v1/targets", timeout=10).json()
    found: dict[str, list[tuple[str, str]]] = {}
    for t in body["data"]["activeTargets"]:
        found.setdefault(t["labels"]["job"], []).append((t["labels"]["instance"], t["health"]))
    return {job: sorted(ts) for job, ts in found.items()}


def test_make_observe_scrapes_every_process_with_the_rules_loaded(
    stack: tuple[Command, int], data_dir: Path
) -> None:
    _, api_port = stack
    prom_port = free_port()
    env = {
        "PATH": f"{ROOT / '.venv' / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(data_dir.parent),
        "CONVEYOR_DATA_DIR": str(data_dir),
        "PROMETHEUS_PORT": str(prom_port),
    }
    observe = Command(["make", "observe"], ROOT, env, data_dir.parent / "make-observe.log")
    try:
        observe.wait_for(r"^Prometheus: ", 60)
        url = re.search(r"^Prometheus: (\S+)$", observe.output(), re.M).group(1)  # type: ignore[union-attr]
        assert url == f"http://127.0.0.1:{prom_port}"
        expected = {
            "conveyor-api": [(f"127.0.0.1:{api_port}", "up")],
            "conveyor-worker": [(f"127.0.0.1:{p}", "up") for p in WORKER_PORTS],
            "conveyor-scheduler": [(f"127.0.0.1:{SCHEDULER_PORT}", "up")],
        }
        last: object = None
        deadline = time.monotonic() + 60  # the first scrapes are up to an interval (5 s) away
        while (last := targets(url)) != expected and time.monotonic() < deadline:
            assert observe.popen.poll() is None, observe.output()[-3000:]
            time.sleep(1)
        assert last == expected
        rules = httpx.get(f"{url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        shipped = yaml.safe_load(RULES.read_text())["groups"]
        assert sorted(g["name"] for g in rules) == sorted(g["name"] for g in shipped)
        loaded = {r["name"] for g in rules for r in g["rules"]}
        assert {r.get("alert") or r["record"] for g in shipped for r in g["rules"]} == loaded
        # Its data lives under the checkout's data dir.
        assert (data_dir / "prometheus" / "data").is_dir()
        observe.ctrl_c()
        observe.stopped_within(20)
    finally:
        observe.kill()
    assert "make observe: stopped" in observe.output()


def test_without_prometheus_it_says_how_to_install_it(tmp_path: Path) -> None:
    # PATH without /usr/bin (where Debian's prometheus lives): make by its full path.
    make = shutil.which("make")
    assert make is not None
    done = run_to_end(
        [make, "observe"],
        60,
        cwd=ROOT,
        env={"PATH": str(ROOT / ".venv" / "bin"), "CONVEYOR_DATA_DIR": str(tmp_path / "data")},
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines[0] == (
        "make observe: prometheus is not installed (Debian/Ubuntu: apt-get install prometheus)"
    ), done.stderr
    assert not (tmp_path / "data" / "prometheus").exists()


def test_make_observe_before_make_up_waits_for_it_and_stops_on_sigterm(tmp_path: Path) -> None:
    if prometheus_binary() is None:
        pytest.fail("prometheus is not installed: apt-get install prometheus", pytrace=False)
    env = {
        "PATH": f"{ROOT / '.venv' / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "CONVEYOR_DATA_DIR": str(tmp_path / "data"),
        "PROMETHEUS_PORT": str(free_port()),
    }
    observe = Command(["make", "observe"], ROOT, env, tmp_path / "make-observe.log")
    try:
        observe.wait_for(r"^Prometheus: ", 60)
        observe.wait_for(r"no `make up` stack yet", 5)
        observe.wait_for_process(r"prometheus --config\.file=", 10)
        observe.sigterm()  # to make alone, as `kill PID` sends it
        observe.stopped_within(20)
    finally:
        observe.kill()
    assert "make observe: stopped" in observe.output()
