"""POST /v1/jobs/{id}/retry: a failed or cancelled job goes back to `queued`
with a fresh attempt budget and runs again; the run before is kept in
`attempt_history`; any other state is a 409, another tenant's job a 404."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
import pytest

from tests.support.jobs import submit, wait_terminal
from tests.support.processes import Stack


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(stack.create_key(f"retry-{uuid.uuid4().hex[:6]}")) as c:
        yield c


def test_a_failed_job_runs_again_with_a_fresh_budget_and_its_history(
    client: httpx.Client,
) -> None:
    job = submit(client, "fail", {"rate": 1, "seed": 7}, max_attempts=2)
    failed = wait_terminal(client, job["id"])
    assert failed["status"] == "failed" and failed["attempts"] == 2

    response = client.post(f"/v1/jobs/{job['id']}/retry")
    assert response.status_code == 200, response.text
    retried = response.json()
    assert retried["status"] == "queued"
    assert retried["attempts"] == 0 and retried["max_attempts"] == 2
    assert retried["error"] is None and retried["finished_at"] is None
    [earlier] = retried["attempt_history"]
    assert earlier["status"] == "failed" and earlier["attempts"] == 2
    assert earlier["error"] == failed["error"]
    assert earlier["worker_id"] == failed["worker_id"]
    assert earlier["finished_at"] is not None and earlier["retried_at"] is not None

    # It really runs again: two more attempts, the same deterministic failure.
    again = wait_terminal(client, job["id"])
    assert again["status"] == "failed" and again["attempts"] == 2
    assert again["attempt_history"] == retried["attempt_history"]
    second = client.post(f"/v1/jobs/{job['id']}/retry").json()
    assert [run["status"] for run in second["attempt_history"]] == ["failed", "failed"]
    assert wait_terminal(client, job["id"])["status"] == "failed"


def test_a_cancelled_job_can_be_retried_and_succeeds(client: httpx.Client) -> None:
    job = submit(client, "sleep", {"ms": 0}, delay_seconds=600)
    assert client.post(f"/v1/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
    retried = client.post(f"/v1/jobs/{job['id']}/retry")
    assert retried.status_code == 200, retried.text
    assert retried.json()["run_at"] is None  # it runs now, not at the old time
    [earlier] = retried.json()["attempt_history"]
    assert earlier["status"] == "cancelled" and earlier["attempts"] == 0
    assert datetime.fromisoformat(earlier["run_at"]) == datetime.fromisoformat(job["run_at"])
    done = wait_terminal(client, job["id"])
    assert done["status"] == "succeeded" and done["result"] == {"slept_ms": 0}
    assert done["attempts"] == 1


def test_other_states_are_409_and_name_the_state(client: httpx.Client) -> None:
    finished = submit(client, "sleep", {"ms": 0})
    wait_terminal(client, finished["id"])
    scheduled = submit(client, "sleep", {"ms": 0}, delay_seconds=600)
    for job, state in ((finished, "succeeded"), (scheduled, "scheduled")):
        response = client.post(f"/v1/jobs/{job['id']}/retry")
        assert response.status_code == 409, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"] == (
            f"Job {job['id']} is {state}; only failed or cancelled jobs can be retried."
        )
        assert client.get(f"/v1/jobs/{job['id']}").json()["attempt_history"] == []
    client.post(f"/v1/jobs/{scheduled['id']}/cancel")


def test_of_two_concurrent_retries_one_wins(client: httpx.Client) -> None:
    job = submit(client, "sleep", {"ms": 0}, delay_seconds=600)
    client.post(f"/v1/jobs/{job['id']}/cancel")
    with ThreadPoolExecutor(2) as pool:
        codes = sorted(
            pool.map(lambda _: client.post(f"/v1/jobs/{job['id']}/retry").status_code, range(2))
        )
    assert codes == [200, 409]
    assert len(wait_terminal(client, job["id"])["attempt_history"]) == 1


def test_another_tenants_job_and_no_job_are_404(stack: Stack, client: httpx.Client) -> None:
    job = submit(client, "sleep", {"ms": 0}, delay_seconds=600)
    client.post(f"/v1/jobs/{job['id']}/cancel")
    with stack.client(stack.create_key(f"other-{uuid.uuid4().hex[:6]}")) as other:
        assert other.post(f"/v1/jobs/{job['id']}/retry").status_code == 404
        assert other.post(f"/v1/jobs/{uuid.uuid4()}/retry").status_code == 404
    assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"
