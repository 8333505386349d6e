"""Real Postgres and Redis for tests: from the environment, Docker, or embedded.

Order (docs/design.md, "Backing services"): TEST_DATABASE_URL/TEST_REDIS_URL when set; otherwise
testcontainers when a Docker engine answers; otherwise the embedded engines.
CONVEYOR_TEST_ENGINES=env|docker|embedded forces a choice (and fails loudly if
that choice cannot run). Never fakes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from lifecycle import dies_with_parent, stop_on_signals  # noqa: E402
from local_engines import LocalPostgres, LocalRedis, free_port  # noqa: E402


@dataclass(frozen=True)
class Engines:
    source: str  # env | docker | embedded
    database_url: str  # an admin URL to the server's maintenance database
    redis_url: str  # without a db number

    def database(self, name: str) -> str:
        """Create a fresh database on the server and return its URL."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        parts = urlsplit(self.database_url)
        return urlunsplit(parts._replace(path=f"/{name}"))

    def redis(self, db: int) -> str:
        parts = urlsplit(self.redis_url)
        return urlunsplit(parts._replace(path=f"/{db}"))


__all__ = [
    "Engines",
    "dies_with_parent",
    "embedded_engines",
    "free_port",
    "provide_engines",
    "stop_on_signals",
]


def docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _choose() -> str:
    forced = os.environ.get("CONVEYOR_TEST_ENGINES")
    if forced:
        if forced not in {"env", "docker", "embedded"}:
            raise RuntimeError(f"CONVEYOR_TEST_ENGINES={forced!r}: use env, docker or embedded")
        return forced
    if os.environ.get("TEST_DATABASE_URL") or os.environ.get("TEST_REDIS_URL"):
        return "env"
    return "docker" if docker_answers() else "embedded"


@contextlib.contextmanager
def _from_env() -> Iterator[Engines]:
    db, rd = os.environ.get("TEST_DATABASE_URL"), os.environ.get("TEST_REDIS_URL")
    if not db or not rd:
        raise RuntimeError("TEST_DATABASE_URL and TEST_REDIS_URL must both be set")
    yield Engines("env", db, urlunsplit(urlsplit(rd)._replace(path="")))


@contextlib.contextmanager
def _from_docker() -> Iterator[Engines]:
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.community.redis import RedisContainer

    if not docker_answers():
        raise RuntimeError("CONVEYOR_TEST_ENGINES=docker but no Docker engine answers")
    pg_image = os.environ.get("SANDBOX_POSTGRES_IMAGE", "postgres:16")
    redis_image = os.environ.get("SANDBOX_REDIS_IMAGE", "redis:7")
    # The suite runs several API and worker processes at once: lift the default 100.
    postgres = PostgresContainer(
        pg_image, username="postgres", password="postgres", dbname="postgres", driver=None
    ).with_command("-c max_connections=400 -c fsync=off -c synchronous_commit=off")
    with (
        postgres as pg,
        RedisContainer(redis_image) as rd,
    ):
        host = pg.get_container_host_ip()
        pg_url = f"postgresql://postgres:postgres@{host}:{pg.get_exposed_port(5432)}/postgres"
        redis_url = f"redis://{rd.get_container_host_ip()}:{rd.get_exposed_port(6379)}"
        yield Engines("docker", pg_url, redis_url)


@contextlib.contextmanager
def embedded_engines(
    workdir: Path | None = None, *, durable: bool = False
) -> Iterator[tuple[LocalPostgres, LocalRedis]]:
    """Embedded Postgres and Redis on free ports, removed afterwards.

    `workdir` is ignored: as root, Postgres runs as `nobody`, which cannot
    enter pytest's 0700 tmp dirs, so the data goes to a fresh /tmp dir.
    """
    base = Path(tempfile.mkdtemp(prefix="conveyor-engines-"))
    base.chmod(0o755)
    pg = LocalPostgres(base / "postgres", free_port(), database="postgres", durable=durable)
    rd = LocalRedis(base / "redis", free_port(), durable=durable)
    try:
        pg.start()
        rd.start()
        yield pg, rd
    finally:
        rd.stop()
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def _embedded(workdir: Path) -> Iterator[Engines]:
    with embedded_engines(workdir) as (pg, rd):
        yield Engines("embedded", pg.url, rd.url.rsplit("/", 1)[0])


@contextlib.contextmanager
def provide_engines(workdir: Path) -> Iterator[Engines]:
    source = _choose()
    if source == "env":
        with _from_env() as engines:
            yield engines
    elif source == "docker":
        with _from_docker() as engines:
            yield engines
    else:
        with _embedded(workdir) as engines:
            yield engines
