"""Effectively-once: the `Idempotency-Key` header on POST /v1/jobs, and
duplicate deliveries of `conveyor.run_job` that change nothing."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conveyor.common.settings import Settings
from conveyor.common.tasks import make_celery_client, publish_run_job
from tests.support.jobs import submit, wait_terminal
from tests.support.processes import Stack, wait_until

SLEEP = {"kind": "sleep", "params": {"ms": 10}}
TTL_HOURS = 0.0003  # ~1.1 s


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    """A fresh tenant per test, so its stats count only this test's jobs."""
    with stack.client(stack.create_key(f"idem-{uuid.uuid4().hex[:8]}")) as c:
        yield c


def total_jobs(client: httpx.Client) -> int:
    return sum(client.get("/v1/stats").json()["counts"].values())


def post(client: httpx.Client, body: Any, key: str, **kwargs: Any) -> httpx.Response:
    return client.post("/v1/jobs", json=body, headers={"Idempotency-Key": key}, **kwargs)


def test_same_key_same_body_returns_the_same_job_and_makes_no_row(client: httpx.Client) -> None:
    key = uuid.uuid4().hex
    first = post(client, SLEEP, key)
    assert first.status_code == 202, first.text
    assert "idempotent-replayed" not in first.headers
    for _ in range(3):
        again = post(client, SLEEP, key)
        assert again.status_code == 202, again.text
        assert again.json()["id"] == first.json()["id"]
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.headers["Location"] == first.headers["Location"]
    assert total_jobs(client) == 1
    assert [job["id"] for job in client.get("/v1/jobs").json()["items"]] == [first.json()["id"]]


def test_same_body_spelled_differently_is_the_same_request(client: httpx.Client) -> None:
    key = uuid.uuid4().hex
    first = post(client, {"kind": "hash", "params": {"data": "a", "iterations": 2}}, key)
    # Another key order and whitespace, and the default max_attempts spelled out.
    raw = '{ "params": {"iterations": 2, "data": "a"},  "kind": "hash", "max_attempts": 3 }'
    again = client.post(
        "/v1/jobs",
        content=raw,
        headers={"Idempotency-Key": key, "Content-Type": "application/json"},
    )
    assert again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"]
    assert total_jobs(client) == 1


@pytest.mark.parametrize(
    "other",
    [
        {"kind": "sleep", "params": {"ms": 11}},
        {"kind": "hash", "params": {"iterations": 1}},
        {**SLEEP, "max_attempts": 5},
    ],
)
def test_same_key_different_body_is_422(client: httpx.Client, other: dict[str, Any]) -> None:
    key = uuid.uuid4().hex
    first = post(client, SLEEP, key)
    assert first.status_code == 202
    conflict = post(client, other, key)
    assert conflict.status_code == 422, conflict.text
    assert conflict.headers["content-type"].startswith("application/problem+json")
    problem = conflict.json()
    assert problem["status"] == 422 and "Idempotency-Key" in problem["detail"]
    assert problem["errors"][0]["field"] == "Idempotency-Key"
    assert "idempotent-replayed" not in conflict.headers
    assert total_jobs(client) == 1
    # The original request still replays.
    assert post(client, SLEEP, key).json()["id"] == first.json()["id"]


def test_keys_are_scoped_per_tenant(stack: Stack, client: httpx.Client) -> None:
    key = uuid.uuid4().hex
    mine = post(client, SLEEP, key)
    with stack.client(stack.create_key(f"idem-other-{uuid.uuid4().hex[:6]}")) as other:
        theirs = post(other, SLEEP, key)
        assert theirs.status_code == 202
        assert "idempotent-replayed" not in theirs.headers
        assert theirs.json()["id"] != mine.json()["id"]
        # A different body under the same key is no conflict across tenants either.
        assert post(other, {"kind": "sleep", "params": {"ms": 99}}, uuid.uuid4().hex).is_success
        assert total_jobs(other) == 2
    assert total_jobs(client) == 1


def test_concurrent_requests_with_one_key_make_exactly_one_job(stack: Stack) -> None:
    key = stack.create_key(f"idem-race-{uuid.uuid4().hex[:6]}")
    idempotency_key = uuid.uuid4().hex
    barrier = threading.Barrier(10)
    answers: list[httpx.Response] = []

    def race() -> None:
        with stack.client(key) as c:
            barrier.wait()
            answers.append(post(c, SLEEP, idempotency_key))

    threads = [threading.Thread(target=race) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [202] * 10, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum("idempotent-replayed" not in a.headers for a in answers) == 1
    with stack.client(key) as c:
        assert total_jobs(c) == 1


def test_key_must_be_1_to_255_characters(client: httpx.Client) -> None:
    assert post(client, SLEEP, "k" * 256).status_code == 422
    assert post(client, SLEEP, "").status_code == 422
    assert post(client, SLEEP, "k" * 255).status_code == 202
    assert total_jobs(client) == 1


@pytest.fixture(scope="module")
def short_ttl_api(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A second API process on the same database whose keys expire after ~1 s."""
    twin = Stack(
        database_url=stack.database_url,
        redis_url=stack.redis_url,
        log_dir=tmp_path_factory.mktemp("short-ttl"),
        extra_env={"IDEMPOTENCY_TTL_HOURS": str(TTL_HOURS)},
    )
    try:
        twin.start_api()
        yield twin
    finally:
        twin.stop()


def test_an_expired_key_makes_a_new_job(short_ttl_api: Stack) -> None:
    with short_ttl_api.client(short_ttl_api.create_key(f"ttl-{uuid.uuid4().hex[:6]}")) as c:
        key = uuid.uuid4().hex
        old = post(c, SLEEP, key)
        assert post(c, SLEEP, key).headers.get("Idempotent-Replayed") == "true"
        time.sleep(TTL_HOURS * 3600 + 0.5)
        new = post(c, SLEEP, key)
        assert new.status_code == 202
        assert "idempotent-replayed" not in new.headers
        assert new.json()["id"] != old.json()["id"]
        # The key now belongs to the new job...
        assert post(c, SLEEP, key).json()["id"] == new.json()["id"]
        # ...and the old job keeps its data.
        assert c.get(f"/v1/jobs/{old.json()['id']}").status_code == 200
        # After expiry a different body is a new request, not a conflict.
        time.sleep(TTL_HOURS * 3600 + 0.5)
        assert post(c, {"kind": "sleep", "params": {"ms": 12}}, key).status_code == 202
        assert total_jobs(c) == 3


# --- duplicate delivery ------------------------------------------------------------


def publish_duplicates(stack: Stack, job: dict[str, Any], count: int) -> None:
    settings = Settings(database_url=stack.database_url, redis_url=stack.redis_url)
    app = make_celery_client(settings, "duplicate-publisher")
    try:
        for _ in range(count):
            publish_run_job(app, uuid.UUID(job["id"]), job["kind"], job["params"])
    finally:
        app.close()


def no_op_claims(stack: Stack, job_id: str) -> int:
    count = 0
    for proc in stack.procs:
        if proc.name != "worker":
            continue
        for line in proc.output().splitlines():
            if job_id in line and "claim was a no-op" in line:
                count += 1
    return count


def test_duplicate_delivery_of_a_finished_job_changes_nothing(
    stack: Stack, client: httpx.Client
) -> None:
    job = wait_terminal(client, submit(client, "hash", {"data": "once", "iterations": 1000})["id"])
    assert job["status"] == "succeeded" and job["attempts"] == 1
    before = no_op_claims(stack, job["id"])
    publish_duplicates(stack, job, 3)
    wait_until(
        lambda: no_op_claims(stack, job["id"]) >= before + 3, 30, what="3 duplicate deliveries"
    )
    after = client.get(f"/v1/jobs/{job['id']}").json()
    assert after == job  # result, attempts, worker, timestamps: all untouched


def test_duplicate_delivery_while_running_is_a_no_op(stack: Stack, client: httpx.Client) -> None:
    job = submit(client, "sleep", {"ms": 1500})
    wait_until(
        lambda: client.get(f"/v1/jobs/{job['id']}").json()["status"] == "running",
        30,
        interval=0.02,
        what="the job running",
    )
    publish_duplicates(stack, job, 2)
    done = wait_terminal(client, job["id"])
    assert done["status"] == "succeeded"
    assert done["attempts"] == 1
    assert done["result"] == {"slept_ms": 1500}
    wait_until(lambda: no_op_claims(stack, job["id"]) >= 2, 30, what="2 duplicate deliveries")


def test_conflict_detail_names_the_key_but_echoes_nothing_else(client: httpx.Client) -> None:
    key = "order-" + uuid.uuid4().hex
    post(client, SLEEP, key)
    problem = post(client, {"kind": "sleep", "params": {"ms": 1}}, key).json()
    assert key in problem["detail"]
    assert json.dumps(SLEEP["params"]) not in problem["detail"]
