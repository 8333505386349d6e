"""Reading, listing with cursors and filters, cancelling, and stats."""

from __future__ import annotations

import uuid

import pytest

from tests.support.jobs import list_all, submit, wait_terminal
from tests.support.processes import Stack


@pytest.fixture(scope="module")
def client(stack: Stack):  # type: ignore[no-untyped-def]
    with stack.client(stack.create_key(f"api-{uuid.uuid4().hex[:6]}")) as c:
        yield c


def test_list_paginates_newest_first_without_gaps_or_repeats(client) -> None:  # type: ignore[no-untyped-def]
    ids = [submit(client, "sleep", {"ms": 0})["id"] for _ in range(25)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/jobs", params=params).json()
        assert len(page["items"]) <= 7
        seen.extend(job["id"] for job in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen[: len(ids)] == list(reversed(ids))
    assert len(seen) == len(set(seen))


def test_list_filters_by_status_and_kind(client) -> None:  # type: ignore[no-untyped-def]
    hashed = submit(client, "hash", {"data": "f", "iterations": 2})
    wait_terminal(client, hashed["id"])
    by_kind = list_all(client, kind="hash")
    assert hashed["id"] in {job["id"] for job in by_kind}
    assert {job["kind"] for job in by_kind} == {"hash"}
    succeeded = list_all(client, status="succeeded")
    assert {job["status"] for job in succeeded} == {"succeeded"}
    assert hashed["id"] in {job["id"] for job in succeeded}


def test_cancel_queued_or_running_job_then_409(stack: Stack) -> None:
    # Queued or already claimed by a worker: either way a 60 s job is cancellable.
    with stack.client(stack.create_key(f"cancel-{uuid.uuid4().hex[:6]}")) as client:
        job = submit(client, "sleep", {"ms": 60000})
        first = client.post(f"/v1/jobs/{job['id']}/cancel")
        assert first.status_code == 200, first.text
        assert first.json()["status"] == "cancelled"
        again = client.post(f"/v1/jobs/{job['id']}/cancel")
        assert again.status_code == 409
        assert "already cancelled" in again.json()["detail"]
        # A cancelled job is terminal: a worker's claim or outcome write is a no-op.
        assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"


def test_cancel_finished_job_is_409(client) -> None:  # type: ignore[no-untyped-def]
    job = submit(client, "sleep", {"ms": 0})
    wait_terminal(client, job["id"])
    response = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 409
    assert "succeeded" in response.json()["detail"]


def test_stats_counts_by_status_and_reports_queue_depth(stack: Stack) -> None:
    with stack.client(stack.create_key(f"stats-{uuid.uuid4().hex[:6]}")) as client:
        assert client.get("/v1/stats").json()["counts"] == {
            "scheduled": 0,
            "queued": 0,
            "running": 0,
            "succeeded": 0,
            "failed": 0,
            "cancelled": 0,
        }
        jobs = [submit(client, "sleep", {"ms": 0}) for _ in range(3)]
        for job in jobs:
            wait_terminal(client, job["id"])
        stats = client.get("/v1/stats").json()
        assert stats["counts"]["succeeded"] == 3
        assert isinstance(stats["queue_depth"], int)


def test_probes_and_docs(stack: Stack) -> None:
    with stack.client(None) as anonymous:
        assert anonymous.get("/livez").status_code == 200
        ready = anonymous.get("/readyz")
        assert ready.status_code == 200 and ready.json()["database"] and ready.json()["broker"]
        assert "swagger" in anonymous.get("/docs").text.lower()
        spec = anonymous.get("/openapi.json").json()
        examples = spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
        assert set(examples["examples"]) == {"sleep", "hash", "primes", "fail"}
        assert "http_requests_total" in anonymous.get("/metrics").text
