"""Cancels racing completion under load: hundreds of short jobs, each cancelled
at a random moment (while queued, while running, or just after it ended).

Every job ends in exactly one terminal state, the one its cancel reply named
(200 `cancelled`, or 409 naming the state that won), no cancelled job ever gets
a result, and Postgres itself saw each job become terminal once: the test
LISTENs on the channel the terminal-state trigger notifies, and a second
transition into a terminal state would be a second notice."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.conftest import new_stack
from tests.support.engines import Engines
from tests.support.faults import FAST_TIMINGS, jobs_by_id, wait_for_jobs

JOBS = 300
CLIENTS = 8
CHANNEL = "conveyor_job_terminal"


def _listen(
    database_url: str, stop: threading.Event, seen: list[str], ready: threading.Event
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"LISTEN {CHANNEL}")
        ready.set()
        while not stop.is_set():
            seen.extend(notice.payload for notice in conn.notifies(timeout=0.2))


def _body(rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.3:
        return {"kind": "hash", "params": {"data": "r", "iterations": rng.choice([1, 20_000])}}
    return {"kind": "sleep", "params": {"ms": rng.choice([0, 20, 80, 300, 600])}}


def test_cancel_racing_completion_leaves_one_terminal_state(
    engines: Engines, tmp_path: Path
) -> None:
    stack = new_stack(engines, tmp_path, **FAST_TIMINGS)
    notices: list[str] = []
    stop, ready = threading.Event(), threading.Event()
    listener = threading.Thread(target=_listen, args=(stack.database_url, stop, notices, ready))
    try:
        stack.start_api()
        stack.start_worker(concurrency=4)
        stack.start_scheduler()
        key = stack.create_key(f"race-{uuid.uuid4().hex[:6]}")
        listener.start()
        assert ready.wait(10)
        rng = random.Random(17)
        plans = [(_body(rng), rng.uniform(0, 0.5)) for _ in range(JOBS)]

        def submit_then_cancel(plan: tuple[dict[str, Any], float]) -> tuple[str, httpx.Response]:
            body, delay = plan
            with httpx.Client(
                base_url=stack.api_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
            ) as client:
                submitted = client.post("/v1/jobs", json=body)
                assert submitted.status_code == 202, submitted.text
                time.sleep(delay)
                return submitted.json()["id"], client.post(
                    f"/v1/jobs/{submitted.json()['id']}/cancel"
                )

        with ThreadPoolExecutor(CLIENTS) as pool:
            replies = dict(pool.map(submit_then_cancel, plans))
        ids = list(replies)
        wait_for_jobs(stack.database_url, ids, timeout=120, what="raced jobs")
        time.sleep(3)  # room for any late outcome write (there must be none)
        rows = jobs_by_id(stack.database_url, ids)
        assert [p.name for p in stack.procs if not p.alive()] == []
    finally:
        stop.set()
        if listener.is_alive():
            listener.join(10)
        stack.stop()

    said: dict[str, str] = {}
    for job_id, reply in replies.items():
        assert reply.status_code in (200, 409), reply.text
        said[job_id] = reply.json()["status" if reply.status_code == 200 else "status_value"]
    assert set(said.values()) <= {"cancelled", "succeeded"}, Counter(said.values())
    # The reply named the state the job is in for good.
    assert {i: rows[i]["status"] for i in ids} == said
    for row in rows.values():
        if row["status"] == "cancelled":
            assert row["result"] is None, row
        else:
            assert row["result"] is not None, row
    # Postgres saw every job become terminal exactly once, in the state it kept.
    per_job = Counter(payload.partition(":")[0] for payload in notices)
    assert {i: per_job[i] for i in ids} == dict.fromkeys(ids, 1)
    assert {p.partition(":")[0]: p.partition(":")[2] for p in notices} == said

    # The race really was run: cancels that won against a running job and cancels
    # that came too late (a cancel of a queued job may happen too).
    cancelled = [r for r in rows.values() if r["status"] == "cancelled"]
    while_running = sum(1 for r in cancelled if r["attempts"])
    too_late = sum(1 for r in rows.values() if r["status"] == "succeeded")
    print(
        f"\n{JOBS} raced: cancelled while queued {len(cancelled) - while_running}, "
        f"while running {while_running}, too late {too_late}"
    )
    assert while_running and too_late
