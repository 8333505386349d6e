"""After N jobs, the API's /metrics and the worker's metrics port show exactly N.

The worker runs Celery's prefork pool with two children; the jobs are spread
over both, so a count that is right proves that the children's samples are
summed (not lost) and read once (not doubled). Killing a child proves that its
counts survive it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import new_stack
from tests.support.engines import free_port
from tests.support.jobs import submit, wait_all_terminal
from tests.support.processes import Proc, Stack, wait_until

N_SLEEP = 12
N_FAIL = 3

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
def metrics_stack(engines, tmp_path_factory) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    # No scheduler: nothing re-publishes, so every count is the test's own.
    stack = new_stack(engines, tmp_path_factory.mktemp("metrics"))
    try:
        stack.start_api()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def worker(metrics_stack: Stack) -> tuple[Proc, str]:
    port = free_port()
    proc = metrics_stack.start_worker(concurrency=2, METRICS_PORT=str(port))
    url = f"http://127.0.0.1:{port}/metrics"
    wait_until(
        lambda: value(scrape(url), "conveyor_worker_processes") == 2, 15, what="2 pool processes"
    )
    return proc, url


@pytest.fixture(scope="module")
def after_jobs(metrics_stack: Stack, worker: tuple[Proc, str]) -> dict[str, object]:
    _, worker_url = worker
    api_url = f"{metrics_stack.api_url}/metrics"
    api_before = scrape(api_url)
    with metrics_stack.client(metrics_stack.create_key("metrics")) as client:
        ids = [submit(client, "sleep", {"ms": 150})["id"] for _ in range(N_SLEEP)]
        ids += [
            submit(client, "fail", {"rate": 1, "seed": i}, max_attempts=1)["id"]
            for i in range(N_FAIL)
        ]
        jobs = wait_all_terminal(client, ids, timeout=120)
    return {
        "jobs": jobs,
        "api_before": api_before,
        "api": scrape(api_url),
        "worker": scrape(worker_url),
    }


def test_jobs_ran_on_both_prefork_children(after_jobs) -> None:  # type: ignore[no-untyped-def]
    jobs = after_jobs["jobs"]
    statuses = sorted(job["status"] for job in jobs.values())
    assert statuses == ["failed"] * N_FAIL + ["succeeded"] * N_SLEEP
    # worker_id is "<nodename>/<child pid>".
    children = {job["worker_id"].rsplit("/", 1)[1] for job in jobs.values()}
    assert len(children) == 2, children


def test_worker_counts_are_exact_across_children(after_jobs) -> None:  # type: ignore[no-untyped-def]
    samples = after_jobs["worker"]
    assert value(samples, "conveyor_jobs_started_total", kind="sleep") == N_SLEEP
    assert value(samples, "conveyor_jobs_started_total", kind="fail") == N_FAIL
    assert (
        value(samples, "conveyor_jobs_finished_total", kind="sleep", status="succeeded") == N_SLEEP
    )
    assert value(samples, "conveyor_jobs_finished_total", kind="fail", status="failed") == N_FAIL
    assert (
        value(samples, "conveyor_job_duration_seconds_count", kind="sleep", status="succeeded")
        == N_SLEEP
    )
    # Every sleep of 150 ms took at least that long.
    assert (
        value(
            samples,
            "conveyor_job_duration_seconds_bucket",
            kind="sleep",
            status="succeeded",
            le="0.1",
        )
        == 0
    )
    assert value(samples, "conveyor_job_queue_wait_seconds_count", kind="sleep") == N_SLEEP
    assert value(samples, "conveyor_job_queue_wait_seconds_sum", kind="sleep") > 0
    assert value(samples, "conveyor_worker_processes") == 2
    assert value(samples, "conveyor_jobs_running") == 0


def test_api_counts_are_exact(after_jobs) -> None:  # type: ignore[no-untyped-def]
    before, after = after_jobs["api_before"], after_jobs["api"]

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("conveyor_jobs_submitted_total", kind="sleep") == N_SLEEP
    assert delta("conveyor_jobs_submitted_total", kind="fail") == N_FAIL
    submits = N_SLEEP + N_FAIL
    assert delta("http_requests_total", method="POST", route="/v1/jobs", status="202") == submits
    assert delta("http_request_duration_seconds_count", method="POST", route="/v1/jobs") == submits
    # Route templates, not raw paths: no label holds a job id.
    routes = {dict(labels)["route"] for (_, labels) in after if "route" in dict(labels)}
    assert {"/v1/jobs", "/v1/stats"} <= routes, routes
    assert not any(job_id in route for route in routes for job_id in after_jobs["jobs"])
    assert value(after, "conveyor_queue_depth", queue="io") == 0
    assert value(after, "conveyor_queue_depth", queue="default") == 0


def test_a_killed_child_keeps_its_counts(after_jobs, worker) -> None:  # type: ignore[no-untyped-def]
    proc, url = worker
    pids = {job["worker_id"].rsplit("/", 1)[1] for job in after_jobs["jobs"].values()}
    victim = int(sorted(pids)[0])
    os.kill(victim, signal.SIGKILL)  # no worker_process_shutdown: pruned at the next scrape

    def replaced() -> bool:
        samples = scrape(url)
        return value(samples, "conveyor_worker_processes") == 2 and not _alive(victim)

    wait_until(replaced, 20, what="the pool to replace the killed child")
    samples = scrape(url)
    assert value(samples, "conveyor_jobs_started_total", kind="sleep") == N_SLEEP
    assert (
        value(samples, "conveyor_jobs_finished_total", kind="sleep", status="succeeded") == N_SLEEP
    )
    assert proc.alive()


def test_queue_depth_shows_the_backlog(metrics_stack: Stack, worker, after_jobs) -> None:  # type: ignore[no-untyped-def]
    proc, _ = worker
    assert proc.stop() == 0  # no consumer now: messages stay in Redis
    metrics_stack.procs.remove(proc)
    with metrics_stack.client(metrics_stack.create_key("backlog")) as client:
        for _ in range(5):
            submit(client, "sleep", {"ms": 1})
    samples = scrape(f"{metrics_stack.api_url}/metrics")
    assert value(samples, "conveyor_queue_depth", queue="io") == 5  # sleep jobs wait in io
    assert value(samples, "conveyor_queue_depth", queue="cpu") == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie until the pool reaps it: count it as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return False
