"""A real Prometheus scrapes the API, two worker processes (prefork, two
children each) and the scheduler while a known workload runs. Then every dashboard query, its
variables substituted, returns data; the numbers match the workload; and the
ConveyorNoWorkers alert fires for real once the workers stop with jobs queued.

Needs Debian's `prometheus` package (apt-get install prometheus); without it
this tier fails, never skips. Run with `make test-observability`."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml

from tests.conftest import new_stack
from tests.observability.prometheus import Prometheus, prometheus_binary, run_prometheus
from tests.support.engines import ROOT, Engines, free_port
from tests.support.jobs import submit
from tests.support.processes import Proc, Stack

pytestmark = pytest.mark.observability

RULES = ROOT / "deploy" / "helm" / "conveyor" / "prometheus" / "rules.yml"
DASHBOARD = ROOT / "deploy" / "helm" / "conveyor" / "dashboards" / "conveyor-dashboard.json"
# Grafana's variables, as "All" and a rate window that spans many 1 s scrapes.
VARIABLES = {"$namespace": ".*", "$kind": ".*", "$__rate_interval": "1m"}
# The known workload: jobs per kind, and what each ends as.
PER_KIND = 5
GOOD = {"sleep": {"ms": 50}, "hash": {"data": "x", "iterations": 1000}, "primes": {"limit": 5000}}
FAILING = 3  # `fail` jobs at rate 1.0 with max_attempts 2: one retry, then failed
RATE_LIMIT = 30  # requests a minute per key: a burst from another key meets 429s
WORKERS, CONCURRENCY = 2, 2
# The alert's own `for` is minutes: the test keeps the shipped expression and waits 3 s.
NO_WORKERS_FOR = "3s"


@dataclass
class Observed:
    stack: Stack
    prom: Prometheus
    workers: list[Proc]
    key: str


def rule_groups() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    for group in groups:
        for rule in group["rules"]:
            if rule.get("alert") == "ConveyorNoWorkers":
                rule["for"] = NO_WORKERS_FOR
    return groups


def dashboard_queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    out = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            assert "$" not in expr, f"unsubstituted variable in {panel['title']}: {expr}"
            out.append((panel["title"], expr))
    assert len(out) > 20
    return out


@pytest.fixture(scope="module")
def observed(engines: Engines, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    binary = prometheus_binary()
    if binary is None:
        pytest.fail(
            "prometheus is not installed: apt-get install prometheus (Debian's package;"
            " CI installs it like Chromium)",
            pytrace=False,
        )
    stack = new_stack(engines, tmp_path_factory.mktemp("observed-stack"))
    try:
        stack.start_api(RATE_LIMIT_PER_MINUTE=str(RATE_LIMIT))
        workers = [
            stack.start_worker(concurrency=CONCURRENCY, RETRY_BACKOFF_SECONDS="0.1")
            for _ in range(WORKERS)
        ]
        scheduler = stack.start_scheduler(METRICS_PORT=str(free_port()))
        jobs = {
            "conveyor-api": [f"127.0.0.1:{stack.api_port}"],
            "conveyor-worker": [f"127.0.0.1:{w.env['METRICS_PORT']}" for w in workers],
            "conveyor-scheduler": [f"127.0.0.1:{scheduler.env['METRICS_PORT']}"],
        }
        with run_prometheus(
            binary, tmp_path_factory.mktemp("prometheus"), jobs, rule_groups()
        ) as prom:
            key = stack.create_key(f"obs-{uuid.uuid4().hex[:6]}")
            yield Observed(stack, prom, workers, key)
    finally:
        stack.stop()


def run_workload(observed: Observed) -> None:
    with observed.stack.client(observed.key) as client:
        for kind, params in GOOD.items():
            for _ in range(PER_KIND):
                submit(client, kind, params)
        for seed in range(FAILING):
            submit(client, "fail", {"rate": 1.0, "seed": seed}, max_attempts=2)
    # A burst from another key: past its per-minute limit the API answers 429.
    other = observed.stack.create_key(f"burst-{uuid.uuid4().hex[:6]}")
    with observed.stack.client(other) as client:
        statuses = [client.get("/v1/jobs", params={"limit": 1}).status_code for _ in range(40)]
    assert 429 in statuses and 200 in statuses, statuses


def finished(prom: Prometheus) -> dict[tuple[str, str], float]:
    return {
        (dict(k)["kind"], dict(k)["status"]): v
        for k, v in prom.values(
            "sum by (kind, status) (conveyor_jobs_finished_total{job='conveyor-worker'})"
        ).items()
    }


def submitted(prom: Prometheus) -> dict[str, float]:
    return {
        dict(k)["kind"]: v
        for k, v in prom.values("sum by (kind) (conveyor_jobs_submitted_total)").items()
    }


EXPECTED_FINISHED = {
    **{(kind, "succeeded"): float(PER_KIND) for kind in GOOD},
    ("fail", "retry"): float(FAILING),
    ("fail", "failed"): float(FAILING),
}


def test_counts_match_the_workload(observed: Observed):
    prom = observed.prom
    prom.wait_for("every target up", lambda: set(prom.targets_up().values()) == {1.0})
    run_workload(observed)
    # Prometheus sees the final counts once the workers have run every attempt.
    prom.wait_for("finished counts", lambda: finished(prom) == EXPECTED_FINISHED, timeout=90)
    # The API's own scrape brings its counts: the workers' may come first, when
    # every job has run between two scrapes of the API.
    expected_submitted = {**{kind: float(PER_KIND) for kind in GOOD}, "fail": float(FAILING)}
    prom.wait_for("submitted counts", lambda: submitted(prom) == expected_submitted, timeout=30)
    started = {
        dict(k)["kind"]: v
        for k, v in prom.values("sum by (kind) (conveyor_jobs_started_total)").items()
    }
    assert started == {**{kind: float(PER_KIND) for kind in GOOD}, "fail": 2.0 * FAILING}
    assert prom.scalar('sum(conveyor_jobs_finished_total{status="failed"})') == FAILING
    prom.wait_for("queue depth back to 0", lambda: prom.scalar("max(conveyor_queue_depth)") == 0)
    assert prom.scalar("count(conveyor_worker_processes)") == WORKERS
    assert prom.scalar("sum(conveyor_worker_processes)") == WORKERS * CONCURRENCY
    # The burst ends the workload: the API's next scrape, not the workers', brings its 429s.
    prom.wait_for(
        "the burst's 429s",
        lambda: prom.scalar('sum(http_requests_total{route="/v1/jobs",status="429"})') > 0,
    )
    # Everything ran: nothing waits, and no worker was lost.
    prom.wait_for(
        "queue age back to 0",
        lambda: prom.scalar("max(conveyor_queue_oldest_job_age_seconds)") == 0,
    )
    assert prom.scalar("sum(conveyor_reconciler_leases_requeued_total)") == 0
    assert prom.scalar("sum(conveyor_reconciler_leases_failed_total)") == 0
    # Nothing is queued and workers are up: the no-workers alert stays quiet.
    assert not prom.query('ALERTS{alertname="ConveyorNoWorkers"}')


def test_every_dashboard_query_returns_data(observed: Observed):
    prom = observed.prom

    def without_data() -> list[str]:
        return [
            f"{title}: {expr}"
            for title, expr in dashboard_queries()
            # Alerts by name are checked once an alert fires, below.
            if not ("ALERTS{" in expr and "vector(0)" not in expr) and not prom.query(expr)
        ]

    # A rate needs two scrapes after the workload: at most a few seconds more.
    deadline = time.monotonic() + 30
    while (empty := without_data()) and time.monotonic() < deadline:
        time.sleep(1)
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)


def test_no_workers_alert_fires_when_workers_stop_with_jobs_queued(observed: Observed):
    prom = observed.prom
    for worker in observed.workers:
        worker.stop(timeout=30)
        assert not worker.alive()
    with observed.stack.client(observed.key) as client:
        # The key's minute may still be spent by the workload: wait for room.
        queued = 0
        while queued < 3:
            response = client.post("/v1/jobs", json={"kind": "sleep", "params": {"ms": 1}})
            if response.status_code == 429:
                time.sleep(1)
                continue
            assert response.status_code == 202, response.text
            queued += 1
    prom.wait_for("queue depth 3", lambda: prom.scalar("max(conveyor_queue_depth)") == 3)
    prom.wait_for(
        "queue age above 0",
        lambda: prom.scalar("max(conveyor_queue_oldest_job_age_seconds)") > 0,
    )
    firing = prom.wait_for(
        "ConveyorNoWorkers firing",
        lambda: prom.query('ALERTS{alertname="ConveyorNoWorkers",alertstate="firing"}'),
        timeout=60,
    )
    assert firing[0]["metric"]["severity"] == "critical"
    # The dashboard's alert panels now show it.
    for title, expr in dashboard_queries():
        if "ALERTS{" in expr:
            values = prom.values(expr)
            assert values, f"{title}: {expr}"
            assert any(v >= 1 for v in values.values()), (title, values)
    by_name = [q for t, q in dashboard_queries() if t == "Alerts firing by name"]
    names = {dict(k).get("alertname") for q in by_name for k in prom.values(q)}
    assert "ConveyorNoWorkers" in names
