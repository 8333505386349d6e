"""The chart's contract, run for real: the rendered api, worker, scheduler and
migration containers' command, args and env (ConfigMap and Secret resolved) are
started as local processes against real Postgres and Redis, and a job goes through.

What a cluster adds (images, networking, probes) is covered by the container
tier and the rendering tests; this proves the chart wires the processes right.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import fresh_redis_url
from tests.deploy.helm_render import containers, find, render, resolved_env
from tests.support.engines import Engines, free_port
from tests.support.jobs import submit, wait_terminal
from tests.support.processes import ROOT, VENV_BIN, Proc, spawn, wait_until


def local_env(rendered_env: dict[str, str], **overrides: str) -> dict[str, str]:
    """The container's env, plus only what a local process needs to find Python."""
    env = {**rendered_env, **overrides}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"
    return env


def argv(container: dict) -> list[str]:  # type: ignore[type-arg]
    return [*container.get("command", []), *container.get("args", [])]


@pytest.fixture
def manifests(engines: Engines) -> list[dict]:  # type: ignore[type-arg]
    database_url = engines.database(f"chart_{uuid.uuid4().hex[:8]}")
    return render(
        ["values-dev.yaml"],
        {"secrets.databaseUrl": database_url, "secrets.redisUrl": fresh_redis_url(engines)},
    )


def test_rendered_processes_run_a_job(manifests: list[dict], tmp_path: Path) -> None:  # type: ignore[type-arg]
    migrate_job = find(manifests, "Job", "migrate")
    [migrate] = containers(migrate_job, init=False)
    migrate_env = local_env(resolved_env(manifests, migrate_job, migrate["name"]))
    assert migrate_env["DATABASE_URL"].startswith("postgresql://")
    done = subprocess.run(
        argv(migrate), cwd=ROOT, env=migrate_env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr

    procs: list[Proc] = []
    try:
        api_deploy = find(manifests, "Deployment", "api")
        api = next(c for c in containers(api_deploy, init=False) if c["name"] == "api")
        port = free_port()
        api_env = local_env(resolved_env(manifests, api_deploy, "api"), PORT=str(port))
        # The init container that waits for the schema must pass now that it is migrated.
        for init in api_deploy["spec"]["template"]["spec"].get("initContainers", []):
            waited = subprocess.run(
                argv(init),
                cwd=ROOT,
                timeout=60,
                capture_output=True,
                text=True,
                env=local_env(resolved_env(manifests, api_deploy, init["name"])),
            )
            assert waited.returncode == 0, waited.stdout + waited.stderr
        procs.append(spawn("chart-api", shlex.join(argv(api)), api_env, tmp_path))

        worker_deploy = find(manifests, "Deployment", "worker")
        [worker] = containers(worker_deploy, init=False)
        heartbeat = tmp_path / "heartbeat"
        worker_env = local_env(
            resolved_env(manifests, worker_deploy, worker["name"]),
            HEARTBEAT_FILE=str(heartbeat),
            METRICS_PORT=str(free_port()),
        )
        procs.append(spawn("chart-worker", shlex.join(argv(worker)), worker_env, tmp_path))

        scheduler_deploy = find(manifests, "Deployment", "scheduler")
        [scheduler] = containers(scheduler_deploy, init=False)
        procs.append(
            spawn(
                "chart-scheduler",
                shlex.join(argv(scheduler)),
                local_env(resolved_env(manifests, scheduler_deploy, scheduler["name"])),
                tmp_path,
            )
        )

        def api_ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(api_ready, 60, what="the chart's API to be ready")
        wait_until(lambda: "ready" in procs[1].output(), 60, what="the chart's worker")
        # The probes the chart declares answer on these processes.
        for path in (
            api["livenessProbe"]["httpGet"]["path"],
            api["readinessProbe"]["httpGet"]["path"],
        ):
            assert httpx.get(f"http://127.0.0.1:{port}{path}").status_code == 200
        probe = subprocess.run(
            worker["livenessProbe"]["exec"]["command"], cwd=ROOT, env=worker_env, timeout=30
        )
        assert probe.returncode == 0

        key_run = subprocess.run(
            ["python", "scripts/create_api_key.py", "--tenant", "chart"],
            cwd=ROOT,
            env=migrate_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        key = key_run.stdout.strip().splitlines()[-1]
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}
        ) as client:
            job = submit(client, "hash", {"data": "chart", "iterations": 3})
            finished = wait_terminal(client, job["id"], timeout=60)
        digest = b"chart"
        for _ in range(3):
            digest = hashlib.sha256(digest).digest()
        assert finished["status"] == "succeeded"
        assert finished["result"] == {"digest": digest.hex()}
    finally:
        for proc in reversed(procs):
            proc.stop()
