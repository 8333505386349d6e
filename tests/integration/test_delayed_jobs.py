"""Delayed jobs: `run_at` or `delay_seconds` stores the job `scheduled`; the
scheduler queues and publishes it once due (never before its run_at, and within
RECONCILE_INTERVAL_SECONDS plus 1 s of it); it can be cancelled meanwhile; bad
input is a 422 naming the field."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from tests.conftest import new_stack
from tests.support.engines import Engines
from tests.support.faults import query
from tests.support.jobs import submit, wait_terminal
from tests.support.processes import Stack

INTERVAL_S = 1.0


@pytest.fixture(scope="module")
def fast(engines: Engines, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = new_stack(
        engines, tmp_path_factory.mktemp("delayed"), RECONCILE_INTERVAL_SECONDS=str(INTERVAL_S)
    )
    try:
        stack.start_api()
        stack.start_worker(concurrency=2)
        stack.start_scheduler()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def client(fast: Stack) -> Iterator[httpx.Client]:
    with fast.client(fast.create_key(f"delay-{uuid.uuid4().hex[:6]}")) as c:
        yield c


def times(stack: Stack, job_id: str) -> dict[str, Any]:
    """The database's own timestamps (one clock: the one the scheduler reads)."""
    [row] = query(
        stack.database_url,
        "SELECT created_at, run_at, started_at, finished_at FROM jobs WHERE id = %s",
        job_id,
    )
    return row


def assert_ran_on_time(stack: Stack, job_id: str) -> None:
    row = times(stack, job_id)
    late = (row["started_at"] - row["run_at"]).total_seconds()
    assert late >= 0, f"started {-late:.3f}s before its run_at"
    assert late <= INTERVAL_S + 1, f"started {late:.3f}s after its run_at"


def test_a_delayed_job_waits_scheduled_then_runs_once_on_time(
    fast: Stack, client: httpx.Client
) -> None:
    job = submit(client, "sleep", {"ms": 0}, delay_seconds=2.5)
    assert job["status"] == "scheduled"
    assert job["attempt_history"] == []
    created, run_at = (datetime.fromisoformat(job[k]) for k in ("created_at", "run_at"))
    assert abs((run_at - created).total_seconds() - 2.5) < 0.01
    time.sleep(1)
    assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "scheduled"
    listed = client.get("/v1/jobs", params={"status": "scheduled"}).json()["items"]
    assert job["id"] in {item["id"] for item in listed}
    assert client.get("/v1/stats").json()["counts"]["scheduled"] >= 1

    done = wait_terminal(client, job["id"], timeout=30)
    assert done["status"] == "succeeded" and done["attempts"] == 1
    assert_ran_on_time(fast, job["id"])


def test_run_at_with_an_offset_is_that_instant(fast: Stack, client: httpx.Client) -> None:
    plus_two = timezone(timedelta(hours=2))
    when = (datetime.now(UTC) + timedelta(seconds=2)).astimezone(plus_two)
    job = submit(client, "sleep", {"ms": 0}, run_at=when.isoformat())
    assert job["status"] == "scheduled"
    assert datetime.fromisoformat(job["run_at"]) == when
    assert wait_terminal(client, job["id"], timeout=30)["status"] == "succeeded"
    assert_ran_on_time(fast, job["id"])


@pytest.mark.parametrize(
    "timing",
    [
        {"run_at": "2001-02-03T04:05:06Z"},
        {"run_at": "0001-01-01T00:00:00+05:00"},
        {"delay_seconds": 0},
    ],
)
def test_a_due_time_already_past_runs_at_once(
    fast: Stack, client: httpx.Client, timing: dict[str, Any]
) -> None:
    job = submit(client, "sleep", {"ms": 0}, **timing)
    assert job["status"] == "queued"
    # Due at the submit, not in the past: run_at never reads earlier than created_at.
    assert job["run_at"] == job["created_at"]
    assert wait_terminal(client, job["id"], timeout=30)["status"] == "succeeded"


def test_a_scheduled_job_can_be_cancelled_and_never_runs(client: httpx.Client) -> None:
    job = submit(client, "sleep", {"ms": 0}, delay_seconds=1.5)
    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    time.sleep(1.5 + INTERVAL_S + 1.5)  # past its due time and a scheduler tick
    after = client.get(f"/v1/jobs/{job['id']}").json()
    assert after["status"] == "cancelled"
    assert after["attempts"] == 0 and after["started_at"] is None


def test_the_batch_route_takes_delays_per_job(fast: Stack, client: httpx.Client) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    response = client.post(
        "/v1/jobs:batch",
        json={
            "jobs": [
                {"kind": "sleep", "params": {"ms": 0}, "delay_seconds": 1.5},
                {"kind": "sleep", "params": {"ms": 0}, "run_at": soon},
                {"kind": "sleep", "params": {"ms": 0}},
            ]
        },
    )
    assert response.status_code == 202, response.text
    items = response.json()["items"]
    assert [item["status"] for item in items] == ["scheduled", "scheduled", "queued"]
    assert items[2]["run_at"] is None
    for item in items:
        assert wait_terminal(client, item["id"], timeout=30)["status"] == "succeeded"
    for item in items[:2]:
        assert_ran_on_time(fast, item["id"])


def test_idempotent_replay_covers_the_delay(client: httpx.Client) -> None:
    headers = {"Idempotency-Key": f"delay-{uuid.uuid4().hex}"}
    body = {"kind": "sleep", "params": {"ms": 0}, "delay_seconds": 60}
    first = client.post("/v1/jobs", json=body, headers=headers)
    again = client.post("/v1/jobs", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other = client.post("/v1/jobs", json={**body, "delay_seconds": 61}, headers=headers)
    assert other.status_code == 422
    assert client.post(f"/v1/jobs/{first.json()['id']}/cancel").status_code == 200


def _problem(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    return problem


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        (
            {"run_at": "2001-01-01T00:00:00Z", "delay_seconds": 5},
            "delay_seconds",
            "give either run_at or delay_seconds, not both",
        ),
        ({"delay_seconds": 30 * 86400 + 1}, "delay_seconds", "less than or equal to 2592000"),
        ({"delay_seconds": -1}, "delay_seconds", "greater than or equal to 0"),
        ({"delay_seconds": "soon"}, "delay_seconds", "valid number"),
        ({"run_at": "2030-01-01T00:00:00"}, "run_at", "timezone info"),
        ({"run_at": "tomorrow"}, "run_at", "valid datetime"),
        ({"run_at": "2999-01-01T00:00:00Z"}, "run_at", "must be at most 30 days ahead"),
    ],
)
def test_bad_timing_is_a_422_naming_the_field(
    client: httpx.Client, extra: dict[str, Any], field: str, message: str
) -> None:
    body = {"kind": "sleep", "params": {"ms": 0}, **extra}
    problem = _problem(client, "/v1/jobs", body)
    assert [e["field"] for e in problem["errors"]] == [field], problem
    assert message in problem["errors"][0]["message"], problem
    assert not problem["detail"].startswith(f"{field}: Value error"), problem
    batch = _problem(client, "/v1/jobs:batch", {"jobs": [{"kind": "sleep", "params": {}}, body]})
    assert f"jobs.1.sleep.{field}" in {e["field"] for e in batch["errors"]}, batch
