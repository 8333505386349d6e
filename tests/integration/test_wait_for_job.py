"""GET /v1/jobs/{id}?wait=N: the answer comes when the job ends (woken by the
terminal-state NOTIFY), or after N seconds with its current state; waiting
holds no database connection, 500 waiters all get their answer, and a lost
listener connection comes back."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import new_stack
from tests.support.engines import Engines
from tests.support.jobs import submit
from tests.support.processes import Stack, wait_until
from tests.support.waiters import wait_on_jobs, waiting_now

POOL = 10  # DB_POOL_SIZE: two pools of 10 per API process, far fewer than the waiters
WAITERS = 500


@pytest.fixture(scope="module")
def api(engines: Engines, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An API and a worker with one pool process."""
    stack = new_stack(engines, tmp_path_factory.mktemp("wait"), DB_POOL_SIZE=str(POOL))
    try:
        stack.start_api()
        stack.start_worker(concurrency=1)
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def client(api: Stack) -> Iterator[httpx.Client]:
    with api.client(api.create_key(f"wait-{uuid.uuid4().hex[:6]}")) as c:
        yield c


def _timed_get(client: httpx.Client, path: str, **params: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = client.get(path, params=params, timeout=60)
    return response, time.monotonic() - started


def _backends(database_url: str) -> list[tuple[int, str, Any]]:
    """(pid, state, transaction start) of every other connection to this database."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid, coalesce(state, ''), xact_start FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [(pid, state, xact_start) for pid, state, xact_start in rows]


def test_wait_answers_when_the_job_finishes(client: httpx.Client) -> None:
    job = submit(client, "sleep", {"ms": 1500})
    response, took = _timed_get(client, f"/v1/jobs/{job['id']}", wait=25)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "succeeded"
    assert response.json()["result"] == {"slept_ms": 1500}
    print(f"\nwait answered {took:.2f}s after the request (job: 1.5 s)")
    assert took < 20  # woken by the job's end, long before the wait ran out


def test_wait_times_out_with_the_current_state_and_a_cancel_wakes_it(
    client: httpx.Client,
) -> None:
    job = submit(client, "sleep", {"ms": 60_000})
    response, took = _timed_get(client, f"/v1/jobs/{job['id']}", wait=1.5)
    assert response.status_code == 200
    assert response.json()["status"] in {"queued", "running"}
    assert took >= 1.5

    async def wait_and_cancel() -> tuple[httpx.Response, float]:
        async with httpx.AsyncClient(base_url=str(client.base_url), headers=client.headers) as ac:
            started = time.monotonic()
            waiting = asyncio.create_task(ac.get(f"/v1/jobs/{job['id']}?wait=25", timeout=60))
            await asyncio.sleep(1)
            assert (await ac.post(f"/v1/jobs/{job['id']}/cancel")).status_code == 200
            return await waiting, time.monotonic() - started

    woken, took = asyncio.run(wait_and_cancel())
    assert woken.json()["status"] == "cancelled"
    assert took < 20


@pytest.mark.parametrize("wait", ["31", "-1", "soon"])
def test_wait_out_of_range_is_422_naming_the_field(client: httpx.Client, wait: str) -> None:
    job = submit(client, "sleep", {"ms": 0})
    response = client.get(f"/v1/jobs/{job['id']}", params={"wait": wait})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == ["wait"]


def test_wait_on_another_tenants_job_is_404_at_once(api: Stack, client: httpx.Client) -> None:
    job = submit(client, "sleep", {"ms": 60_000})
    with api.client(api.create_key(f"other-{uuid.uuid4().hex[:6]}")) as other:
        response, took = _timed_get(other, f"/v1/jobs/{job['id']}", wait=20)
    assert response.status_code == 404
    assert took < 10
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200


def test_500_waiters_hold_no_connection_and_all_get_the_end(
    api: Stack, client: httpx.Client
) -> None:
    # Jobs that would run a minute; they end when the test cancels them.
    jobs = [submit(client, "sleep", {"ms": 60_000})["id"] for _ in range(10)]
    key = client.headers["Authorization"].removeprefix("Bearer ")
    samples: list[list[tuple[int, str, Any]]] = []

    async def main() -> tuple[list[tuple[int, str | None, float]], float]:
        waiting = asyncio.create_task(wait_on_jobs(api.api_url, key, jobs, WAITERS, 30))
        await asyncio.to_thread(
            wait_until, lambda: waiting_now(api.api_url) == WAITERS, 60, 0.2, "all waiting"
        )
        for _ in range(3):
            samples.append(await asyncio.to_thread(_backends, api.database_url))
            await asyncio.sleep(0.5)
        assert not waiting.done()
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=api.api_url, headers=client.headers) as ac:
            # Other routes are served while they wait.
            assert (await ac.get(f"/v1/jobs/{jobs[0]}")).json()["status"] == "running"
            for job_id in jobs:
                assert (await ac.post(f"/v1/jobs/{job_id}/cancel")).status_code == 200
        return await waiting, time.monotonic() - started

    answers, took = asyncio.run(main())
    assert [(code, status) for code, status, _ in answers] == [(200, "cancelled")] * WAITERS
    print(f"\n{WAITERS} waiters answered {took:.2f}s after the cancels; backends {samples}")
    assert took < 25  # woken by the cancels, not timed out (their wait was 30 s)
    assert waiting_now(api.api_url) == 0
    # The two pools (POOL each), the listener and the worker's: nowhere near one per
    # waiter, and none holding one transaction open across the samples (a read
    # in flight may show in one of them).
    assert max(len(sample) for sample in samples) <= 2 * POOL + 4, samples
    held = [
        {(pid, started) for pid, state, started in sample if state == "idle in transaction"}
        for sample in samples
    ]
    assert set.intersection(*held) == set(), samples


def test_a_lost_listener_reconnects_and_wakes_its_waiters(api: Stack, client: httpx.Client) -> None:
    def listener_pids() -> list[int]:
        with psycopg.connect(api.database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = 'conveyor-api-listener'"
            ).fetchall()
        return [pid for (pid,) in rows]

    [pid] = wait_until(listener_pids, 10, what="the API's listener")
    job = submit(client, "sleep", {"ms": 60_000})

    async def main() -> tuple[httpx.Response, float]:
        async with httpx.AsyncClient(base_url=api.api_url, headers=client.headers) as ac:
            started = time.monotonic()
            waiting = asyncio.create_task(ac.get(f"/v1/jobs/{job['id']}?wait=30", timeout=60))
            await asyncio.sleep(1)
            with psycopg.connect(api.database_url, autocommit=True) as conn:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            back = await asyncio.to_thread(
                wait_until, lambda: [p for p in listener_pids() if p != pid], 15, 0.1, "relisten"
            )
            assert back
            assert (await ac.post(f"/v1/jobs/{job['id']}/cancel")).status_code == 200
            return await waiting, time.monotonic() - started

    response, took = asyncio.run(main())
    assert response.json()["status"] == "cancelled"
    assert took < 20  # woken through the new listener, not by the 30 s timeout


def test_a_stopping_api_answers_its_waiters_at_once(
    engines: Engines, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # No worker: the job stays queued. A 20 s grace that the waiter must not use up.
    stack = new_stack(engines, tmp_path_factory.mktemp("wait-stop"), GRACEFUL_TIMEOUT_SECONDS="20")
    try:
        web = stack.start_api()
        with stack.client(stack.create_key(f"stop-{uuid.uuid4().hex[:6]}")) as client:
            job = submit(client, "sleep", {"ms": 0})

            async def main() -> tuple[httpx.Response, float]:
                async with httpx.AsyncClient(base_url=stack.api_url, headers=client.headers) as ac:
                    waiting = asyncio.create_task(
                        ac.get(f"/v1/jobs/{job['id']}?wait=30", timeout=60)
                    )
                    await asyncio.to_thread(
                        wait_until, lambda: waiting_now(stack.api_url) == 1, 15, 0.1, "waiting"
                    )
                    started = time.monotonic()
                    web.signal(signal.SIGTERM)
                    return await waiting, time.monotonic() - started

            response, took = asyncio.run(main())
        assert response.status_code == 200
        assert response.json()["status"] == "queued"
        assert web.popen.wait(20) == 0
        print(f"\nwaiter answered {took:.2f}s after SIGTERM")
        assert took < 10  # not its 30 s, nor the 20 s grace
    finally:
        stack.stop()
