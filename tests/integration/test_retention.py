"""Retention: the scheduler deletes finished jobs older than JOB_RETENTION_DAYS
(a fraction of a day here: 0.00005 is 4.32 s), with their idempotency keys, and
counts them on its /metrics; live jobs stay, whatever their age, and submits
keep being served while thousands of rows go."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg
import pytest

from tests.conftest import new_stack
from tests.integration.test_observability_alert_metrics import sample
from tests.support.engines import Engines, free_port
from tests.support.faults import query
from tests.support.jobs import submit, wait_terminal
from tests.support.processes import Stack, wait_until

RETENTION_DAYS = "0.00005"
RETENTION_S = 0.00005 * 86400
PRUNED = "conveyor_retention_jobs_pruned_total"
OLD_ROWS = 3000


@dataclass
class Pruning:
    stack: Stack
    metrics: str  # the scheduler's /metrics


@pytest.fixture(scope="module")
def bed(engines: Engines, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pruning]:
    stack = new_stack(engines, tmp_path_factory.mktemp("retention"), RECONCILE_INTERVAL_SECONDS="1")
    try:
        stack.start_api()
        stack.start_worker(concurrency=2)
        port = free_port()
        stack.start_scheduler(JOB_RETENTION_DAYS=RETENTION_DAYS, METRICS_PORT=str(port))
        yield Pruning(stack, f"http://127.0.0.1:{port}/metrics")
    finally:
        stack.stop()


def test_finished_jobs_go_with_their_keys_and_live_ones_stay(bed: Pruning) -> None:
    pruning, metrics = bed.stack, bed.metrics
    before = sample(metrics, PRUNED) or 0
    key = f"once-{uuid.uuid4().hex}"
    with pruning.client(pruning.create_key(f"ret-{uuid.uuid4().hex[:6]}")) as client:
        done = client.post(
            "/v1/jobs",
            json={"kind": "sleep", "params": {"ms": 0}},
            headers={"Idempotency-Key": key},
        ).json()
        waiting = submit(client, "sleep", {"ms": 0}, delay_seconds=600)
        finished = wait_terminal(client, done["id"])
        assert finished["status"] == "succeeded"
        finished_at = time.monotonic()
        assert client.get(f"/v1/jobs/{done['id']}").status_code == 200  # younger than retention

        wait_until(
            lambda: client.get(f"/v1/jobs/{done['id']}").status_code == 404,
            RETENTION_S + 15,
            what="the finished job pruned",
        )
        gone_after = time.monotonic() - finished_at
        assert gone_after >= RETENTION_S - 1, gone_after  # not before its time
        assert query(pruning.database_url, "SELECT 1 FROM jobs WHERE id = %s", done["id"]) == []
        assert sample(metrics, PRUNED) == before + 1

        # The key went with it: another body under the same key is a new job, not a 422.
        reused = client.post(
            "/v1/jobs",
            json={"kind": "sleep", "params": {"ms": 1}},
            headers={"Idempotency-Key": key},
        )
        assert reused.status_code == 202, reused.text
        assert "Idempotent-Replayed" not in reused.headers
        assert reused.json()["id"] != done["id"]

        # Older than the retention but not finished: kept.
        assert client.get(f"/v1/jobs/{waiting['id']}").json()["status"] == "scheduled"
        client.post(f"/v1/jobs/{waiting['id']}/cancel")


def test_thousands_of_old_jobs_go_in_batches_while_submits_go_on(bed: Pruning) -> None:
    pruning, metrics = bed.stack, bed.metrics
    with pruning.client(pruning.create_key(f"bulk-{uuid.uuid4().hex[:6]}")) as client:
        tenant = query(
            pruning.database_url,
            "SELECT tenant_id FROM jobs WHERE id = %s",
            submit(client, "sleep", {"ms": 0})["id"],
        )[0]["tenant_id"]
        before = sample(metrics, PRUNED) or 0
        with psycopg.connect(pruning.database_url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO jobs (id, tenant_id, kind, params, status, attempts, max_attempts,"
                " idempotency_key, created_at, updated_at, finished_at)"
                " SELECT gen_random_uuid(), %s, 'sleep', '{\"ms\": 0}', 'succeeded', 1, 3,"
                " 'old-' || n, now() - interval '2 days', now() - interval '2 days',"
                " now() - interval '2 days' FROM generate_series(1, %s) AS n",
                (tenant, OLD_ROWS),
            )

        def timed_submit(_: int) -> tuple[int, float]:
            started = time.monotonic()
            response = client.post("/v1/jobs", json={"kind": "sleep", "params": {"ms": 0}})
            return response.status_code, time.monotonic() - started

        with ThreadPoolExecutor(4) as pool:
            results = []
            deadline = time.monotonic() + 30
            while (sample(metrics, PRUNED) or 0) < before + OLD_ROWS:
                assert time.monotonic() < deadline, "old jobs not pruned within 30 s"
                results += list(pool.map(timed_submit, range(8)))
        assert {code for code, _ in results} == {202}
        slowest = max(seconds for _, seconds in results)
        print(
            f"\nretention: {OLD_ROWS} pruned; {len(results)} submits meanwhile,"
            f" the slowest {slowest:.3f}s"
        )
        assert slowest < 5, slowest
        left = query(
            pruning.database_url,
            "SELECT count(*) AS n FROM jobs WHERE idempotency_key LIKE 'old-%%'",
        )
        assert left == [{"n": 0}]
