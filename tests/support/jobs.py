"""Client-side helpers for submitting jobs and waiting for outcomes."""

from __future__ import annotations

import time
from typing import Any

import httpx

TERMINAL = {"succeeded", "failed", "cancelled"}


def submit(client: httpx.Client, kind: str, params: dict[str, Any], **extra: Any) -> dict[str, Any]:
    response = client.post("/v1/jobs", json={"kind": kind, "params": params, **extra})
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"/v1/jobs/{response.json()['id']}"
    return response.json()


def wait_terminal(client: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in TERMINAL:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not terminal after {timeout}s: {job}")


def list_all(client: httpx.Client, **filters: str) -> list[dict[str, Any]]:
    """Every job of the caller's tenant, following cursors."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100, **filters}
    while True:
        page = client.get("/v1/jobs", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        items.extend(body["items"])
        if not body["next_cursor"]:
            return items
        params["cursor"] = body["next_cursor"]


def wait_all_terminal(
    client: httpx.Client, ids: list[str], timeout: float = 120
) -> dict[str, dict[str, Any]]:
    """Wait until every id is terminal (the tenant must own nothing else live)."""
    deadline = time.monotonic() + timeout
    while True:
        counts = client.get("/v1/stats").json()["counts"]
        if counts["queued"] + counts["running"] == 0:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs not terminal after {timeout}s: {counts}")
        time.sleep(0.25)
    jobs = {job["id"]: job for job in list_all(client)}
    missing = set(ids) - jobs.keys()
    assert not missing, f"{len(missing)} accepted jobs are missing from the list"
    return {job_id: jobs[job_id] for job_id in ids}
