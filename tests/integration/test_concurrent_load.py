"""20 concurrent clients submit 500 jobs; every one succeeds exactly once."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from tests.support.jobs import wait_all_terminal
from tests.support.processes import Stack

CLIENTS = 20
JOBS = 500


def test_500_jobs_from_20_clients_all_succeed_once(stack: Stack) -> None:
    key = stack.create_key(f"load-{uuid.uuid4().hex[:6]}")

    def submit_batch(client_no: int) -> list[str]:
        ids = []
        with stack.client(key) as client:
            for n in range(client_no, JOBS, CLIENTS):
                body = {"kind": "hash", "params": {"data": f"job-{n}", "iterations": 10}}
                if n % 2:
                    body = {"kind": "sleep", "params": {"ms": 5}}
                response = client.post("/v1/jobs", json=body)
                assert response.status_code == 202, response.text
                ids.append(response.json()["id"])
        return ids

    with ThreadPoolExecutor(CLIENTS) as pool:
        ids = [job_id for batch in pool.map(submit_batch, range(CLIENTS)) for job_id in batch]
    assert len(ids) == len(set(ids)) == JOBS

    with stack.client(key) as client:
        jobs = wait_all_terminal(client, ids, timeout=240)
    statuses = {job["status"] for job in jobs.values()}
    assert statuses == {"succeeded"}
    assert {job["attempts"] for job in jobs.values()} == {1}
    assert all(job["result"] for job in jobs.values())
