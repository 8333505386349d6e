"""Factor VI, Processes: execute the app as one or more stateless processes.

- two API processes against one database serve one client alternately and
  consistently (submit on A, read on B, list on both, cancel on B, A sees it);
- SIGKILL one API while a client loops submitting with Idempotency-Keys (and
  retries on the other): every accepted job exists, once, and completes;
- no process keeps local state: the API, a worker and the scheduler run a job
  in an empty working directory, which stays empty.
Related: tests/integration/test_fault_api_sigterm.py (SIGTERM, graceful),
tests/integration/test_idempotency.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import new_stack
from tests.support.engines import Engines, free_port
from tests.support.jobs import list_all, submit, wait_all_terminal, wait_terminal
from tests.support.processes import PROCFILE, Proc, Stack
from tests.twelve_factor.conftest import spawn_in, wait_api, wait_output


@pytest.fixture(scope="module")
def two_apis(engines: Engines, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:  # type: ignore[type-arg]
    stack = new_stack(engines, tmp_path_factory.mktemp("processes"))
    try:
        api_a = stack.start_api()
        port_a = stack.api_port
        stack.start_api()
        port_b = stack.api_port
        yield stack, (api_a, port_a), port_b
    finally:
        stack.stop()


STREAM_BEFORE_KILL = 20  # accepted requests before one API is killed
STREAM_AFTER_KILL = 20  # requests sent once it is dead


def client(port: int, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )


def test_two_api_processes_serve_one_client_consistently(two_apis: tuple) -> None:  # type: ignore[type-arg]
    stack, (_, port_a), port_b = two_apis
    key = stack.create_key("alternating")
    with client(port_a, key) as a, client(port_b, key) as b:
        # No worker runs yet: the jobs stay queued, so the cancel below is legal.
        first = submit(a, "sleep", {"ms": 10})
        second = submit(b, "sleep", {"ms": 10})
        assert b.get(f"/v1/jobs/{first['id']}").json() == a.get(f"/v1/jobs/{first['id']}").json()
        assert (
            {j["id"] for j in list_all(a)}
            == {j["id"] for j in list_all(b)}
            == {
                first["id"],
                second["id"],
            }
        )
        cancelled = b.post(f"/v1/jobs/{first['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert a.get(f"/v1/jobs/{first['id']}").json()["status"] == "cancelled"
        assert a.get("/v1/stats").json()["counts"] == b.get("/v1/stats").json()["counts"]
        assert b.post(f"/v1/jobs/{second['id']}/cancel").status_code == 200


def test_killing_one_api_mid_stream_loses_no_accepted_job(two_apis: tuple) -> None:  # type: ignore[type-arg]
    stack, (api_a, port_a), port_b = two_apis
    stack.start_worker(concurrency=4)
    key = stack.create_key("kill-one-api")
    accepted: dict[str, str] = {}  # Idempotency-Key -> job id
    a_failures = after_kill = 0
    # Killed from another thread once the stream is flowing, so the kill can
    # land mid-request; the stream then goes on for a while on B alone.
    stream_flowing = threading.Event()
    killer = threading.Thread(
        target=lambda: stream_flowing.wait(60) and api_a.kill_group(), daemon=True
    )
    with client(port_a, key) as a, client(port_b, key) as b:
        killer.start()
        deadline = time.monotonic() + 60
        i = 0
        while after_kill < STREAM_AFTER_KILL:
            assert time.monotonic() < deadline, f"{i} requests, {after_kill} after the kill"
            if len(accepted) >= STREAM_BEFORE_KILL:
                stream_flowing.set()
            killed = not api_a.alive()
            idem = f"stream-{i}"
            body = {"kind": "sleep", "params": {"ms": 20}}
            headers = {"Idempotency-Key": idem}
            for target in (a, b) if i % 2 == 0 else (b, a):
                try:
                    response = target.post("/v1/jobs", json=body, headers=headers)
                except httpx.HTTPError:
                    a_failures += target is a
                    continue  # that process is gone: the client retries the other
                if response.status_code == 202:
                    accepted[idem] = response.json()["id"]
                    break
            after_kill += killed
            i += 1
        killer.join()
        assert not api_a.alive()
        assert a_failures > 0, "the kill did not land while the client was submitting"
        assert len(accepted) == i, "a request was accepted by neither process"
        jobs = wait_all_terminal(b, list(accepted.values()), timeout=90)
        assert {job["status"] for job in jobs.values()} == {"succeeded"}
        # A retried key made no second job: one job per accepted request, no more.
        assert len(list_all(b)) == len(set(accepted.values())) == len(accepted)


def test_no_process_writes_local_state(engines: Engines, tmp_path: Path) -> None:
    stack: Stack = new_stack(engines, tmp_path / "logs")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    port = free_port()
    procs: list[Proc] = []
    try:
        api = spawn_in("web", PROCFILE["web"], stack.env(PORT=str(port)), cwd, tmp_path / "logs")
        procs.append(api)
        worker_env = stack.env(
            HEARTBEAT_FILE=str(tmp_path / "heartbeat"), METRICS_PORT=str(free_port())
        )
        worker = spawn_in("worker", PROCFILE["worker"], worker_env, cwd, tmp_path / "logs")
        procs.append(worker)
        scheduler = spawn_in(
            "scheduler", PROCFILE["scheduler"], stack.env(), cwd, tmp_path / "logs"
        )
        procs.append(scheduler)
        wait_api(api, port)
        wait_output(worker, "ready")
        wait_output(scheduler, "scheduler started")
        key = stack.create_key("stateless")
        with client(port, key) as c:
            job = submit(c, "hash", {"data": "x", "iterations": 2})
            assert wait_terminal(c, job["id"])["status"] == "succeeded"
    finally:
        for proc in reversed(procs):
            proc.stop()
    assert sorted(p.name for p in cwd.iterdir()) == []
