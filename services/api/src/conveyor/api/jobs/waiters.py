"""`GET /v1/jobs/{id}?wait=N`: answer as soon as the job is terminal.

Postgres LISTEN/NOTIFY, not Redis pub/sub (docs/develop/architecture.md): a
trigger on `jobs` notifies `conveyor_job_terminal` in the very transaction
that makes a job terminal (migration 0005), so every writer notifies and a
notice is sent only if that write commits. Each API process keeps ONE
listening connection and fans its notices out to the requests waiting in it;
a waiting request holds no database connection.

A waiter subscribes before it reads the row, so a job that ends between the
read and the wait still wakes it. Notices sent while the listener was
disconnected are lost: on every (re)connect all waiters are woken to read
again, and a waiter always reads once more when its time is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
from prometheus_client import Gauge

from conveyor.api.jobs.reads import fetch_job
from conveyor.common.logging import get_logger
from conveyor.common.models import JobStatus

CHANNEL = "conveyor_job_terminal"
MAX_WAIT_SECONDS = 30
APPLICATION_NAME = "conveyor-api-listener"  # how pg_stat_activity shows the listener
log = get_logger(__name__)


class JobWaiters:
    def __init__(
        self,
        dsn: str,
        gauge: Gauge | None = None,
        *,
        retry_s: float = 1.0,
        keepalive_s: float = 10.0,
    ) -> None:
        self.dsn, self.gauge, self.retry_s, self.keepalive_s = dsn, gauge, retry_s, keepalive_s
        self.waiting: dict[uuid.UUID, set[asyncio.Event]] = {}
        self.stopping = False  # the server is shutting down: answer now
        self.listening = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name="job-waiters")

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    @contextlib.contextmanager
    def subscribe(self, job_id: uuid.UUID) -> Iterator[asyncio.Event]:
        """An event set when `job_id` may have become terminal: read it again."""
        event = asyncio.Event()
        self.waiting.setdefault(job_id, set()).add(event)
        try:
            yield event
        finally:
            events = self.waiting.get(job_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self.waiting[job_id]

    def on_notify(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        try:
            job_id = uuid.UUID(payload.partition(":")[0])
        except ValueError:
            return
        for event in self.waiting.get(job_id, ()):
            event.set()

    async def sleep(self, woken: asyncio.Event, seconds: float) -> None:
        """Until `woken` is set or `seconds` pass; counted by the gauge meanwhile."""
        if self.gauge is not None:
            self.gauge.inc()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), seconds)
        finally:
            if self.gauge is not None:
                self.gauge.dec()

    def stop_waiting(self) -> None:
        """On shutdown: every waiter answers with the job as it is now, so a
        graceful stop does not sit out their waits."""
        self.stopping = True
        self.wake_all()

    async def stop_waiting_when(self, stopping: Callable[[], bool], poll_s: float = 0.25) -> None:
        """Until cancelled: call stop_waiting() once `stopping()` says so."""
        while not stopping():  # noqa: ASYNC110 - uvicorn's exit flag is a plain attribute
            await asyncio.sleep(poll_s)
        self.stop_waiting()

    def wake_all(self) -> None:
        for events in self.waiting.values():
            for event in events:
                event.set()

    async def run(self) -> None:
        """Listen, and reconnect whenever the connection is lost, until cancelled."""
        while True:
            try:
                await self.listen_once()
            except Exception as exc:  # down, refused, cut off: waiters fall back to reads
                log.warning("job notice listener lost; reconnecting", error=str(exc))
            await asyncio.sleep(self.retry_s)

    async def listen_once(self) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(
            self.dsn, timeout=5, server_settings={"application_name": APPLICATION_NAME}
        )
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _: lost.set())
        try:
            await conn.add_listener(CHANNEL, self.on_notify)
            self.listening.set()
            self.wake_all()  # whatever ended while nobody listened
            while not lost.is_set():
                try:
                    await asyncio.wait_for(lost.wait(), self.keepalive_s)
                except TimeoutError:
                    # A silently dropped connection shows up here, not as a close.
                    await conn.execute("SELECT 1", timeout=5)
            log.warning("job notice listener connection closed; reconnecting")
        finally:
            self.listening.clear()
            conn.terminate()


async def wait_for_job(
    waiters: JobWaiters,
    pg: asyncpg.Pool,
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    wait_s: float,
) -> dict[str, Any]:
    """The job once terminal, or as it is after `wait_s` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    with waiters.subscribe(job_id) as woken:
        while True:
            woken.clear()
            job = await fetch_job(pg, tenant_id, job_id)  # holds no connection after
            left = deadline - loop.time()
            if JobStatus(job["status"]).is_terminal or left <= 0 or waiters.stopping:
                return job
            await waiters.sleep(woken, left)
