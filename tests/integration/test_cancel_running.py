"""Cancelling a running job: the API answers `cancelled` at once, the worker
interrupts the handler (sleeping or hashing) and frees its pool slot
within seconds, and the job's result is never written later."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import new_stack
from tests.support.engines import Engines
from tests.support.jobs import submit, wait_terminal
from tests.support.processes import Proc, Stack, wait_until

# Each would run far longer than the test waits for the slot to free: a sleep, and
# a pure-Python CPU loop (about 19 s here). `primes` at its largest limit runs only
# about 3.6 s here, so under load it may end before the cancel lands.
LONG_JOBS = {
    "sleep": {"ms": 60_000},
    "hash": {"data": "x", "iterations": 10_000_000},
}
SLOT_FREED_WITHIN_S = 15  # a deadline; the observed time (about 1-2 s) is printed


@pytest.fixture(scope="module")
def one_slot(engines: Engines, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An API and one worker with ONE pool process: a job after a cancelled
    one can only start once the cancelled job's handler has stopped."""
    stack = new_stack(engines, tmp_path_factory.mktemp("cancel"))
    try:
        stack.start_api()
        stack.start_worker(concurrency=1)
        yield stack
    finally:
        stack.stop()


def _events(worker: Proc, job_id: str) -> list[dict[str, Any]]:
    events = []
    for line in worker.output().splitlines():
        if job_id in line and line.startswith("{"):
            events.append(json.loads(line))
    return events


def _running(client: httpx.Client, job_id: str) -> bool:
    return bool(client.get(f"/v1/jobs/{job_id}").json()["status"] == "running")


@pytest.mark.parametrize("kind", sorted(LONG_JOBS))
def test_cancel_running_job_stops_its_handler_and_frees_the_slot(
    one_slot: Stack, kind: str
) -> None:
    worker = one_slot.procs[1]
    with one_slot.client(one_slot.create_key(f"cancel-{uuid.uuid4().hex[:6]}")) as client:
        job = submit(client, kind, LONG_JOBS[kind])
        wait_until(lambda: _running(client, job["id"]), 30, what=f"{kind} job running")

        cancelled = client.post(f"/v1/jobs/{job['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        assert cancelled.json()["result"] is None
        cancelled_at = time.monotonic()

        # The only pool process is busy until the handler stops.
        follower = submit(client, "sleep", {"ms": 0})
        wait_until(
            lambda: client.get(f"/v1/jobs/{follower['id']}").json()["status"] == "succeeded",
            SLOT_FREED_WITHIN_S,
            what="the job after the cancelled one",
        )
        print(f"\n{kind}: slot freed {time.monotonic() - cancelled_at:.2f}s after the cancel")

        # The worker stopped the handler (not merely discarded its outcome)...
        finished = [e for e in _events(worker, job["id"]) if e.get("message") == "job finished"]
        assert [e["status"] for e in finished] == ["cancelled"], _events(worker, job["id"])
        # ...and the job stays cancelled, with no result, for good.
        again = client.get(f"/v1/jobs/{job['id']}").json()
        assert again["status"] == "cancelled"
        assert again["result"] is None
        assert again["finished_at"] == cancelled.json()["finished_at"]
        assert worker.alive()


def test_cancel_after_success_is_409_naming_the_state(one_slot: Stack) -> None:
    with one_slot.client(one_slot.create_key(f"late-{uuid.uuid4().hex[:6]}")) as client:
        job = wait_terminal(client, submit(client, "sleep", {"ms": 0})["id"])
        response = client.post(f"/v1/jobs/{job['id']}/cancel")
        assert response.status_code == 409
        problem = response.json()
        assert problem["status_value"] == "succeeded"
        assert "already succeeded" in problem["detail"]
        assert client.get(f"/v1/jobs/{job['id']}").json()["result"] == {"slept_ms": 0}
