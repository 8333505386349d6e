"""Security: tenant isolation on every route, key revocation, no secret in any
log, the body limit, the per-key rate limit, and constant-time key checks."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
from psycopg import sql

from conveyor.common.keys import hash_secret, split_key
from tests.conftest import new_stack
from tests.support.engines import Engines
from tests.support.jobs import list_all, submit, wait_terminal
from tests.support.processes import PROCFILE, Stack, run_admin, spawn, wait_until

SLEEP = {"kind": "sleep", "params": {"ms": 1}}


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def revoke(stack: Stack, key_or_lookup: str) -> subprocess.CompletedProcess[str]:
    return run_admin(f"python scripts/revoke_api_key.py {key_or_lookup}", stack.env())


@pytest.fixture(scope="module")
def stack(engines: Engines, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """This module's stack, like the shared one but on a DATABASE_URL that carries a
    real password (for a role made here): every process serving these tests is
    then also checked for leaking it."""
    stack = new_stack(engines, tmp_path_factory.mktemp("security"))
    admin = urlsplit(stack.database_url)
    role, password = f"conveyor_{uuid.uuid4().hex[:8]}", "pw-" + secrets.token_urlsafe(24)
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
        conn.execute(
            sql.SQL("GRANT ALL ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(role))
        )
    stack.database_url = urlunsplit(
        admin._replace(netloc=f"{role}:{password}@{admin.hostname}:{admin.port}")
    )
    try:
        stack.start_api()
        stack.start_worker(concurrency=2)
        stack.start_scheduler()
        yield stack
    finally:
        stack.stop()


# --- tenant isolation ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tenants(stack: Stack) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    with (
        stack.client(stack.create_key(f"alice-{uuid.uuid4().hex[:6]}")) as alice,
        stack.client(stack.create_key(f"mallory-{uuid.uuid4().hex[:6]}")) as mallory,
    ):
        yield alice, mallory


def test_another_tenants_job_is_404_on_every_route(tenants: tuple[Any, Any]) -> None:
    alice, mallory = tenants
    queued = submit(alice, "sleep", {"ms": 60_000}, max_attempts=1)  # stays queued or running
    done = wait_terminal(alice, submit(alice, "hash", {"data": "x", "iterations": 3})["id"])
    for job in (queued, done):
        seen = assert_problem(mallory.get(f"/v1/jobs/{job['id']}"), 404)
        # Exactly what a job that does not exist gets: no existence oracle.
        missing = uuid.uuid4()
        unknown = assert_problem(mallory.get(f"/v1/jobs/{missing}"), 404)
        assert seen["detail"].replace(job["id"], "ID") == unknown["detail"].replace(
            str(missing), "ID"
        )
        assert_problem(mallory.post(f"/v1/jobs/{job['id']}/cancel"), 404)
    # Listing, with every filter, never shows Alice's jobs to Mallory, while
    # the same filters do find them for Alice (an empty list proves nothing alone).
    for filters in ({}, {"status": "succeeded"}, {"status": "queued"}, {"kind": "hash"}):
        assert list_all(mallory, **filters) == []
        if filters != {"status": "queued"}:  # the sleep job may be running by now
            assert list_all(alice, **filters), filters
    assert sum(mallory.get("/v1/stats").json()["counts"].values()) == 0
    # Alice's cursor does not page Mallory into Alice's jobs.
    for _ in range(3):
        submit(alice, "sleep", {"ms": 0})
    cursor = alice.get("/v1/jobs", params={"limit": 1}).json()["next_cursor"]
    assert cursor
    assert mallory.get("/v1/jobs", params={"cursor": cursor}).json()["items"] == []
    # Mallory's cancel attempt changed nothing for Alice.
    assert alice.get(f"/v1/jobs/{queued['id']}").json()["status"] in ("queued", "running")
    assert alice.get(f"/v1/jobs/{done['id']}").json() == done
    alice.post(f"/v1/jobs/{queued['id']}/cancel")  # tidy up: no 60 s job left behind


def test_a_batch_is_stored_under_the_callers_tenant_only(tenants: tuple[Any, Any]) -> None:
    alice, mallory = tenants
    response = mallory.post("/v1/jobs:batch", json={"jobs": [SLEEP, SLEEP]})
    assert response.status_code == 202, response.text
    ids = [item["id"] for item in response.json()["items"]]
    for job_id in ids:
        assert_problem(alice.get(f"/v1/jobs/{job_id}"), 404)
        assert mallory.get(f"/v1/jobs/{job_id}").status_code == 200


# --- revocation -----------------------------------------------------------------------


def test_revoked_key_is_401_at_once_and_other_keys_keep_working(stack: Stack) -> None:
    tenant = f"revoke-{uuid.uuid4().hex[:6]}"
    doomed, spare = stack.create_key(tenant), stack.create_key(tenant)
    with stack.client(doomed) as c:
        job = submit(c, "sleep", {"ms": 0})  # the API now holds this key as verified
    done = revoke(stack, doomed)
    assert done.returncode == 0, done.stdout + done.stderr
    assert split_key(doomed)[1] not in done.stdout + done.stderr  # type: ignore[index]
    with stack.client(doomed) as c:
        for method, path in [
            ("GET", "/v1/jobs"),
            ("POST", "/v1/jobs"),
            ("POST", "/v1/jobs:batch"),
            ("GET", f"/v1/jobs/{job['id']}"),
            ("POST", f"/v1/jobs/{job['id']}/cancel"),
            ("GET", "/v1/stats"),
        ]:
            body = {"jobs": [SLEEP]} if path.endswith(":batch") else SLEEP
            response = c.request(method, path, json=body if method == "POST" else None)
            assert_problem(response, 401)
            assert response.headers["www-authenticate"] == "Bearer"
    # Nothing was stored for the revoked key: the tenant still has its one job.
    with stack.client(spare) as c:
        assert [j["id"] for j in c.get("/v1/jobs").json()["items"]] == [job["id"]]
    # The tenant's other key, and its jobs, are untouched.
    with stack.client(spare) as c:
        assert c.get(f"/v1/jobs/{job['id']}").status_code == 200
    # Revoking is idempotent, takes the bare lookup id too, and an unknown key exits 1.
    assert revoke(stack, doomed).returncode == 0
    lookup, _ = split_key(spare)  # type: ignore[misc]
    assert revoke(stack, lookup).returncode == 0
    with stack.client(spare) as c:
        assert_problem(c.get("/v1/jobs"), 401)
    assert revoke(stack, "cvk_0000000000000000_nope").returncode == 1


def test_keys_are_stored_only_as_hashes(stack: Stack) -> None:
    key = stack.create_key(f"hashes-{uuid.uuid4().hex[:6]}")
    lookup, secret = split_key(key)  # type: ignore[misc]
    with psycopg.connect(stack.database_url) as conn:
        row = conn.execute("SELECT * FROM api_keys WHERE lookup = %s", (lookup,)).fetchone()
    assert row is not None
    assert hashlib.sha256(secret.encode()).hexdigest() in row
    assert not any(secret in str(value) or key in str(value) for value in row)


def test_unknown_key_costs_the_same_comparison_as_a_known_one(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """authenticate() compares a secret even when the lookup id matches no key,
    so the response time does not tell an attacker which lookup ids exist. Run
    against the API's own asyncpg pool on this module's database."""
    from fastapi.security import HTTPAuthorizationCredentials

    from conveyor.api import auth
    from conveyor.api.pg import create_pg_pool
    from conveyor.api.problems import Problem
    from conveyor.api.settings import ApiSettings

    real = auth.secret_matches
    compared: list[str] = []

    def recording(secret: str, stored: str) -> bool:
        compared.append(stored)
        return real(secret, stored)

    monkeypatch.setattr(auth, "secret_matches", recording)
    key = stack.create_key(f"timing-{uuid.uuid4().hex[:6]}")
    lookup, secret = split_key(key)  # type: ignore[misc]
    settings = ApiSettings(database_url=stack.database_url, redis_url=stack.redis_url)

    async def refused(token: str) -> Problem:
        pool = await create_pg_pool(settings)
        try:
            credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
            with pytest.raises(Problem) as raised:
                await auth.authenticate(SimpleNamespace(pg=pool), credentials)  # type: ignore[arg-type]
            return raised.value
        finally:
            await pool.close()

    unknown = asyncio.run(refused(f"cvk_{secrets.token_hex(8)}_{secret}"))
    wrong_secret = asyncio.run(refused(f"cvk_{lookup}_{secret[::-1]}"))
    # One comparison each: against a dummy hash when no row matched, against the
    # stored hash when one did; and the two answers are the same.
    assert compared == ["0" * 64, hash_secret(secret)]
    assert (unknown.status, unknown.detail) == (wrong_secret.status, wrong_secret.detail)
    assert unknown.status == 401


# --- body limit and rate limit on a dedicated API process -------------------------------

LIMIT_PER_MINUTE = 5
MAX_BODY = 2048


@pytest.fixture(scope="module")
def hardened(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A second API process on the same database, with a small body limit and a rate limit."""
    twin = Stack(
        database_url=stack.database_url,
        redis_url=stack.redis_url,
        log_dir=tmp_path_factory.mktemp("hardened"),
        extra_env={"RATE_LIMIT_PER_MINUTE": str(LIMIT_PER_MINUTE), "MAX_BODY_BYTES": str(MAX_BODY)},
    )
    try:
        twin.start_api()
        yield twin
    finally:
        twin.stop()


def test_body_over_the_limit_is_413_declared_or_streamed(hardened: Stack) -> None:
    big = {"kind": "hash", "params": {"iterations": 1, "data": "x" * MAX_BODY}}
    with hardened.client(None) as anonymous:
        # Checked before authentication: nobody makes the server read a huge body.
        declared = anonymous.post("/v1/jobs", json=big)
        assert "too large" in assert_problem(declared, 413)["title"].lower()
        streamed = anonymous.post(
            "/v1/jobs",
            content=iter([b"x" * 1024] * 4),
            headers={"content-type": "application/json"},
        )
        assert_problem(streamed, 413)
        assert_problem(anonymous.post(f"/v1/jobs/{uuid.uuid4()}/cancel", json=big), 413)
    with hardened.client(hardened.create_key(f"body-{uuid.uuid4().hex[:6]}")) as c:
        small = {"kind": "hash", "params": {"iterations": 1, "data": "x" * (MAX_BODY - 200)}}
        assert c.post("/v1/jobs", json=small).status_code == 202


def test_rate_limit_answers_429_with_retry_after_per_key(hardened: Stack) -> None:
    tenant = f"rate-{uuid.uuid4().hex[:6]}"
    # Fixed one-minute windows: 2 x limit + 2 requests exceed the limit within one
    # window even when the burst straddles a window boundary.
    burst = 2 * LIMIT_PER_MINUTE + 2
    with (
        hardened.client(hardened.create_key(tenant)) as noisy,
        hardened.client(hardened.create_key(tenant)) as quiet,
        hardened.client(hardened.create_key(tenant)) as submitter,
    ):
        answers = [noisy.get("/v1/stats") for _ in range(burst)]
        limited = [a for a in answers if a.status_code == 429]
        assert limited, [a.status_code for a in answers]
        assert {a.status_code for a in answers} == {200, 429}
        for answer in limited:
            assert_problem(answer, 429)
            assert 1 <= int(answer.headers["retry-after"]) <= 60
        # The limit is per key: another key of the same tenant is not affected.
        assert quiet.get("/v1/stats").status_code == 200
        # Submissions are limited too, and a limited submission stores no job.
        posts = [submitter.post("/v1/jobs", json=SLEEP) for _ in range(burst)]
        assert {p.status_code for p in posts} == {202, 429}
        stored = {job["id"] for job in list_all(quiet)}
        accepted = {p.json()["id"] for p in posts if p.status_code == 202}
        assert stored == accepted


def test_rate_limit_is_off_by_default(stack: Stack) -> None:
    with stack.client(stack.create_key(f"unlimited-{uuid.uuid4().hex[:6]}")) as c:
        statuses = {c.get("/v1/stats").status_code for _ in range(30)}
    assert statuses == {200}


# --- secrets never reach a log ---------------------------------------------------------


def test_no_process_ever_logs_the_api_key_or_the_database_password(
    stack: Stack, hardened: Stack, tmp_path: Path
) -> None:
    password = urlsplit(stack.database_url).password
    assert password
    # Fresh processes at DEBUG, the chattiest level, on the same database and broker.
    twin = Stack(
        database_url=stack.database_url,
        redis_url=stack.redis_url,
        log_dir=tmp_path,
        extra_env={"LOG_LEVEL": "DEBUG"},
    )
    outputs: dict[str, str] = {}

    def admin(name: str, command: str, **env: str) -> subprocess.CompletedProcess[str]:
        done = run_admin(command, twin.env(**env))
        outputs[name] = done.stdout + done.stderr
        return done

    assert admin("migrate", PROCFILE["release"]).returncode == 0
    created = admin(
        "create_api_key", f"python scripts/create_api_key.py --tenant {uuid.uuid4().hex[:6]}"
    )
    assert created.returncode == 0
    key = created.stdout.strip().splitlines()[-1]
    # The key is printed once, on purpose, as the command's last stdout line: that is
    # its output, not a log. Everything else it printed must be free of it.
    outputs["create_api_key"] = outputs["create_api_key"].replace(key + "\n", "", 1)
    lookup, secret = split_key(key)  # type: ignore[misc]

    twin.start_api()
    twin.start_worker(concurrency=1)
    twin.start_scheduler()
    with twin.client(key) as c:
        ok = submit(c, "sleep", {"ms": 0})
        failed = submit(c, "fail", {"rate": 1, "seed": 1}, max_attempts=1)
        assert wait_terminal(c, ok["id"])["status"] == "succeeded"
        assert wait_terminal(c, failed["id"])["status"] == "failed"
        invalid = c.post("/v1/jobs", json={"kind": "sleep", "params": {"ms": "soon"}})
        assert invalid.status_code == 422, invalid.text
        assert c.get(f"/v1/jobs/{uuid.uuid4()}").status_code == 404
    with twin.client(f"cvk_{lookup}_{secret[::-1]}") as forged:
        assert forged.get("/v1/jobs").status_code == 401
    assert admin("revoke", f"python scripts/revoke_api_key.py {key}").returncode == 0
    with twin.client(key) as c:
        assert c.get("/v1/jobs").status_code == 401

    # Failure paths print the most: bad config, and a database that refuses us.
    bad = admin("config_error", PROCFILE["web"], PORT="not-a-port")
    assert bad.returncode != 0 and "PORT" in bad.stderr
    unreachable = urlsplit(stack.database_url)._replace(
        netloc=f"{urlsplit(stack.database_url).username}:{password}@127.0.0.1:1"
    )
    env = twin.env()
    env["DATABASE_URL"] = urlunsplit(unreachable)
    lost = spawn("scheduler-no-db", PROCFILE["scheduler"], env, twin.log_dir)
    try:
        wait_until(lambda: "reconcile pass failed" in lost.output(), 30, what="a failed pass")
    finally:
        lost.stop()
    procs = list(twin.procs)
    twin.stop()  # shutdown messages too
    # ...and everything the module's own processes, which served every test above, said.
    for proc in [*procs, lost, *stack.procs, *hardened.procs]:
        outputs[f"{proc.name} {proc.log_path.name}"] = proc.output()

    assert all(outputs.values()), [name for name, text in outputs.items() if not text]
    for name, text in outputs.items():
        for label, value in [("API key", key), ("key secret", secret), ("password", password)]:
            assert value not in text, f"{label} found in the output of {name}"
    # The logs did say what happened, naming the key only by its public lookup id.
    assert lookup in outputs["revoke"]
    assert any("reconcile pass failed" in text for name, text in outputs.items() if "no-db" in name)


def test_settings_never_show_the_password() -> None:
    from conveyor.common.settings import Settings

    settings = Settings(
        database_url="postgresql://u:hunter2-secret@db:5432/x", redis_url="redis://:r3d1s@r:6379/0"
    )
    for text in (repr(settings), str(settings), str(settings.model_dump())):
        assert "hunter2-secret" not in text and "r3d1s" not in text
