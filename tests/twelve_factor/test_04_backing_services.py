"""Factor IV, Backing services: treat backing services as attached resources.

The same code runs the whole pipeline (migrate, key, API, worker, a job
through the queue into the database) against two different PostgreSQL servers
and two different Redis servers; the two deployments' environments differ only
in DATABASE_URL and REDIS_URL. Related: tests/deploy/test_helm_contract.py (the
chart attaches them by URL), tests/integration/test_fault_database_restart.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import psycopg
import redis

from tests.conftest import new_stack
from tests.support.engines import Engines, embedded_engines
from tests.support.jobs import submit, wait_terminal
from tests.support.processes import Stack

# Per-process plumbing the harness picks for any stack (ports, heartbeat path).
RUNTIME_ONLY = {"PORT", "METRICS_PORT", "HEARTBEAT_FILE"}


def run_pipeline(stack: Stack) -> dict:  # type: ignore[type-arg]
    stack.start_api()
    stack.start_worker(concurrency=1)
    key = stack.create_key("attached")
    with stack.client(key) as client:
        job = submit(client, "hash", {"data": "factor-iv", "iterations": 5})
        return wait_terminal(client, job["id"], timeout=60)


def identity(stack: Stack) -> tuple[str, str]:
    """Which servers a stack talks to: Postgres' system identifier, Redis' run id."""
    with psycopg.connect(stack.database_url) as conn:
        system_id = conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()
    run_id = redis.Redis.from_url(stack.redis_url).info("server")["run_id"]
    return str(system_id[0]), run_id  # type: ignore[index]


def job_ids(stack: Stack) -> set[str]:
    with psycopg.connect(stack.database_url) as conn:
        return {str(row[0]) for row in conn.execute("SELECT id FROM jobs")}


def test_the_pipeline_runs_on_either_pair_swapped_only_by_url(
    engines: Engines, tmp_path: Path
) -> None:
    with embedded_engines() as (pg, rd):
        other = Engines("embedded", pg.url, rd.url.rsplit("/", 1)[0])
        stacks = [new_stack(engines, tmp_path / "a"), new_stack(other, tmp_path / "b")]
        try:
            jobs = [run_pipeline(stack) for stack in stacks]
            identities = [identity(stack) for stack in stacks]
            stored = [job_ids(stack) for stack in stacks]
            env_a, env_b = (stack.env() for stack in stacks)
        finally:
            for stack in stacks:
                stack.stop()

    digest = b"factor-iv"
    for _ in range(5):
        digest = hashlib.sha256(digest).digest()
    for job in jobs:
        assert job["status"] == "succeeded", job
        assert job["result"] == {"digest": digest.hex()}
    # Two different Postgres servers and two different Redis servers...
    assert identities[0][0] != identities[1][0], identities
    assert identities[0][1] != identities[1][1], identities
    # ...each job stored only in its own deployment's database...
    assert stored == [{jobs[0]["id"]}, {jobs[1]["id"]}]
    # ...and the only configuration that differs is the two URLs.
    differing = {k for k in env_a.keys() | env_b.keys() if env_a.get(k) != env_b.get(k)}
    assert differing - RUNTIME_ONLY == {"DATABASE_URL", "REDIS_URL"}
