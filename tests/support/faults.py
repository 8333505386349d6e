"""Helpers for the fault tests: engines we can stop, load we can keep up, and the
database's own view of every job.

The fault tests never trust the API to tell them what happened to a job: they
read the `jobs` table directly, so "no job lost" is checked against the truth,
even while the API is the thing that is down.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil
import psycopg
from psycopg.rows import dict_row

from tests.support.engines import LocalPostgres, LocalRedis, embedded_engines
from tests.support.processes import Proc, Stack

# Short timings so that a fault and its recovery fit in a test.
FAST_TIMINGS = {
    "JOB_LEASE_SECONDS": "5",
    "RECONCILE_INTERVAL_SECONDS": "1",
    "RECONCILE_QUEUED_AFTER_SECONDS": "3",
    "WORKER_SHUTDOWN_GRACE_SECONDS": "5",
    "RETRY_BACKOFF_SECONDS": "0.2",
    "GRACEFUL_TIMEOUT_SECONDS": "10",
    "PUBLISH_BACKOFF_SECONDS": "1",
}
TERMINAL = ("succeeded", "failed", "cancelled")


# --- the database's view -------------------------------------------------------


def query(database_url: str, sql: str, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
        return list(conn.cursor(row_factory=dict_row).execute(sql, params or None).fetchall())


def status_counts(database_url: str) -> dict[str, int]:
    rows = query(database_url, "SELECT status, count(*) AS n FROM jobs GROUP BY status")
    counts = dict.fromkeys(("scheduled", "queued", "running", *TERMINAL), 0)
    counts.update({row["status"]: int(row["n"]) for row in rows})
    return counts


def jobs_by_id(database_url: str, ids: list[str] | None = None) -> dict[str, dict[str, Any]]:
    columns = (
        "id::text AS id, status, attempts, max_attempts, worker_id, result, error, "
        "idempotency_key, created_at, updated_at, finished_at"
    )
    if ids is None:
        rows = query(database_url, f"SELECT {columns} FROM jobs")
    else:
        rows = query(database_url, f"SELECT {columns} FROM jobs WHERE id = ANY(%s::uuid[])", ids)
    return {row["id"]: row for row in rows}


def held_by(database_url: str, worker: Proc) -> list[dict[str, Any]]:
    """Jobs running under this worker process (its nodename embeds its pid)."""
    return query(
        database_url,
        "SELECT id::text AS id, worker_id, attempts FROM jobs "
        "WHERE status = 'running' AND worker_id LIKE %s",
        f"worker-{worker.popen.pid}@%",
    )


def wait_for_jobs(
    database_url: str, ids: list[str], timeout: float, what: str = "jobs terminal"
) -> tuple[dict[str, dict[str, Any]], float]:
    """Poll the database until every id is terminal. Returns (rows, seconds waited)."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        rows = jobs_by_id(database_url, ids)
        missing = set(ids) - rows.keys()
        assert not missing, f"{len(missing)} accepted jobs have no row: {sorted(missing)[:5]}"
        live = [row for row in rows.values() if row["status"] not in TERMINAL]
        if not live:
            return rows, time.monotonic() - started
        if time.monotonic() > deadline:
            statuses: dict[str, int] = {}
            for row in rows.values():
                statuses[row["status"]] = statuses.get(row["status"], 0) + 1
            raise AssertionError(f"{what}: not all terminal after {timeout}s: {statuses}")
        time.sleep(0.25)


def wait_db(database_url: str, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# --- engines we own ---------------------------------------------------------------


def create_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class FaultBed:
    """Embedded Postgres and Redis that this test may stop, plus a Stack on them."""

    pg: LocalPostgres
    redis: LocalRedis
    stack: Stack
    log_dir: Path

    @property
    def database_url(self) -> str:
        return self.stack.database_url

    def stop_redis(self) -> None:
        self.redis.stop()
        if port_open(self.redis.port):
            raise AssertionError("Redis still listens after stop(): the fault did not happen")

    def start_redis(self) -> None:
        # Same data dir and port: to every client this is the same Redis coming back.
        self.redis.start()

    def stop_postgres(self) -> None:
        self.pg.stop()  # fast shutdown: open connections are terminated
        if port_open(self.pg.port):
            raise AssertionError("Postgres still listens after stop(): the fault did not happen")

    def start_postgres(self) -> None:
        self.pg.start()

    def logs(self) -> str:
        """Every process's output, for failure messages."""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
            for path in sorted(self.log_dir.glob("*.log"))
        )


@contextlib.contextmanager
def fault_bed(log_dir: Path, **env: str) -> Iterator[FaultBed]:
    """Fresh embedded engines (never the session's shared ones: we break these)."""
    with embedded_engines(log_dir) as (pg, rd):
        database_url = create_database(pg.url, "conveyor_faults")
        stack = Stack(
            database_url=database_url,
            redis_url=rd.url,
            log_dir=log_dir,
            extra_env={**FAST_TIMINGS, **env},
        )
        stack.migrate()
        bed = FaultBed(pg, rd, stack, log_dir)
        try:
            yield bed
        except BaseException:
            print(f"process logs in {log_dir}; their tails:\n{bed.logs()}")  # shown on failure
            raise
        finally:
            stack.stop()


# --- clients -------------------------------------------------------------------------


def sleep_job(ms: int) -> dict[str, Any]:
    return {"kind": "sleep", "params": {"ms": ms}}


def submit_all(
    base_url: str, key: str, bodies: list[dict[str, Any]], threads: int = 8
) -> list[str]:
    """Submit every body (all must be accepted); ids come back in body order."""
    ids: list[str | None] = [None] * len(bodies)

    def worker(offset: int) -> None:
        with httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as client:
            for index in range(offset, len(bodies), threads):
                response = client.post("/v1/jobs", json=bodies[index])
                assert response.status_code == 202, response.text
                ids[index] = response.json()["id"]

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert all(ids), "a submitting thread failed"
    return [job_id for job_id in ids if job_id]


@dataclass
class Outcome:
    started: float
    ended: float
    idempotency_key: str
    status: int | None = None
    job_id: str | None = None
    retry_after: str | None = None
    content_type: str | None = None
    error: str | None = None


@dataclass
class Load:
    """Client threads that keep submitting sleep jobs until stopped.

    Every request carries a unique Idempotency-Key, so a request that failed on
    the wire can still be matched against the database afterwards.
    """

    base_url: str
    key: str
    threads: int = 4
    interval_s: float = 0.02
    job_ms: int = 50
    fresh_connections: bool = False
    outcomes: list[Outcome] = field(default_factory=list)
    # What killed a client thread (not a wire error, which is an Outcome):
    # stop() raises it, so a dead thread cannot quietly thin out the load.
    crashes: list[BaseException] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _pool: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Load:
        for n in range(self.threads):
            thread = threading.Thread(target=self._run, name=f"load-{n}", daemon=True)
            thread.start()
            self._pool.append(thread)
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.stop()
        else:  # the test already failed: stop quietly, keep its error
            self._stop.set()
            for thread in self._pool:
                thread.join(30)

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for thread in self._pool:
            thread.join(30)
        stuck = [thread.name for thread in self._pool if thread.is_alive()]
        assert not stuck, f"load threads still running 30 s after stop: {stuck}"
        if self.crashes:
            raise AssertionError(f"{len(self.crashes)} load threads crashed") from self.crashes[0]
        return self.outcomes

    def _client(self) -> httpx.Client:
        limits = httpx.Limits(max_keepalive_connections=0 if self.fresh_connections else 1)
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=httpx.Timeout(15, connect=2),
            limits=limits,
        )

    def _run(self) -> None:
        client = self._client()
        try:
            while not self._stop.is_set():
                self._one(client)
                self._stop.wait(self.interval_s)
        except BaseException as exc:
            with self._lock:
                self.crashes.append(exc)
        finally:
            client.close()

    def _one(self, client: httpx.Client) -> None:
        key = uuid.uuid4().hex
        outcome = Outcome(started=time.monotonic(), ended=0.0, idempotency_key=key)
        try:
            response = client.post(
                "/v1/jobs", json=sleep_job(self.job_ms), headers={"Idempotency-Key": key}
            )
            outcome.status = response.status_code
            outcome.retry_after = response.headers.get("retry-after")
            outcome.content_type = response.headers.get("content-type")
            if response.status_code == 202:
                outcome.job_id = response.json()["id"]
        except httpx.HTTPError as exc:
            outcome.error = f"{type(exc).__name__}: {exc}"
        outcome.ended = time.monotonic()
        with self._lock:
            self.outcomes.append(outcome)

    def accepted(self) -> list[str]:
        with self._lock:
            return [o.job_id for o in self.outcomes if o.status == 202 and o.job_id]

    def wait_accepted(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.accepted()) < count:
            self._check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"only {len(self.accepted())} of {count} jobs accepted in {timeout}s"
                )
            time.sleep(0.05)

    def wait_outcomes(
        self, predicate: Callable[[list[Outcome]], bool], timeout: float, what: str
    ) -> float:
        """Poll the outcomes so far (in the order they completed) until
        `predicate` holds; returns the seconds it took."""
        started = time.monotonic()
        while True:
            self._check_alive()
            with self._lock:
                done = list(self.outcomes)
            if predicate(done):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.05)

    def _check_alive(self) -> None:
        with self._lock:
            if self.crashes:
                raise AssertionError("a load thread crashed") from self.crashes[0]


def accepted_by(proc: Proc, clients: list[socket.socket]) -> bool:
    """Whether the process has accept()ed every one of these client sockets: a
    connection still in the listen backlog has no socket in the process yet."""
    peers = {
        (conn.raddr.ip, conn.raddr.port)
        for conn in psutil.Process(proc.popen.pid).net_connections(kind="tcp")
        if conn.raddr
    }
    return all(sock.getsockname()[:2] in peers for sock in clients)


class ExitWatch:
    """Notes the moment a process exits, while the test goes on doing other things."""

    def __init__(self, proc: Proc) -> None:
        self.proc = proc
        self.exited_at: float | None = None
        self._thread = threading.Thread(target=self._wait, daemon=True)
        self._thread.start()

    def _wait(self) -> None:
        self.proc.popen.wait()
        self.exited_at = time.monotonic()

    def result(self, since: float, timeout: float) -> tuple[int, float]:
        """(exit code, seconds from `since` to the exit); fails if it does not exit in time."""
        self._thread.join(max(0.0, since + timeout - time.monotonic()))
        if self.exited_at is None:
            self.proc.kill_group()
            raise AssertionError(f"{self.proc.name} still running {timeout}s after the signal")
        return self.proc.popen.returncode, self.exited_at - since
