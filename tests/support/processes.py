"""Run Conveyor's real processes (the Procfile's commands) for tests."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.engines import ROOT, dies_with_parent, free_port

sys.path.insert(0, str(ROOT / "scripts"))
import contextlib

from procfile import read_procfile

PROCFILE = read_procfile()
VENV_BIN = Path(sys.executable).parent


def base_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TEST_"))}
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
    )
    env.update(overrides)
    return env


def run_admin(
    command: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """A one-off admin process, exactly as an operator would run it."""
    return subprocess.run(
        shlex.split(command), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    def kill_group(self) -> None:
        """SIGKILL the process and every child it started (Celery's pool included)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def stop(self, timeout: float = 15) -> int:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill_group()
        else:
            # Reap children that may outlive a dead parent.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        return self.popen.returncode


def spawn(name: str, command: str, env: dict[str, str], log_dir: Path) -> Proc:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}-{time.monotonic_ns()}.log"
    with log_path.open("wb") as out:
        popen = subprocess.Popen(
            # Its own group, so a test can kill it whole; SIGTERM if pytest dies outright.
            dies_with_parent(shlex.split(command)),
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Proc(name, popen, log_path, env)


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):  # type: ignore[no-untyped-def]
    return timed_wait(predicate, timeout, interval, what)[0]


def timed_wait(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll until `predicate()` is truthy: (its value, seconds it took). A
    deadline, not a speed test: callers print the seconds and assert only on
    behaviour, or on a bound generous enough for a shared machine."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        value = predicate()
        if value:
            return value, time.monotonic() - started
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Stack:
    """One isolated Conveyor deployment: its own database, Redis db, and processes."""

    database_url: str
    redis_url: str
    log_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    api_port: int = 0

    def env(self, **overrides: str) -> dict[str, str]:
        return base_env(
            DATABASE_URL=self.database_url, REDIS_URL=self.redis_url, **self.extra_env, **overrides
        )

    def migrate(self) -> None:
        done = run_admin(PROCFILE["release"], self.env())
        assert done.returncode == 0, done.stdout + done.stderr

    def create_key(self, tenant: str) -> str:
        done = run_admin(
            f"python scripts/create_api_key.py --tenant {shlex.quote(tenant)}", self.env()
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout.strip().splitlines()[-1]

    def start_api(self, **env: str) -> Proc:
        self.api_port = free_port()
        proc = spawn("web", PROCFILE["web"], self.env(PORT=str(self.api_port), **env), self.log_dir)
        self.procs.append(proc)
        wait_until(lambda: self._ready(proc), 30, what="API /readyz")
        return proc

    def _ready(self, proc: Proc) -> bool:
        if not proc.alive():
            raise AssertionError(f"API exited {proc.popen.returncode}:\n{proc.output()[-3000:]}")
        try:
            return httpx.get(f"{self.api_url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def start_worker(self, concurrency: int = 2, **env: str) -> Proc:
        heartbeat = self.log_dir / f"heartbeat-{time.monotonic_ns()}"
        proc = spawn(
            "worker",
            PROCFILE["worker"],
            self.env(
                **{
                    "WORKER_CONCURRENCY": str(concurrency),
                    "HEARTBEAT_FILE": str(heartbeat),
                    "METRICS_PORT": str(free_port()),
                    **env,
                }
            ),
            self.log_dir,
        )
        self.procs.append(proc)

        def ready() -> bool:
            if not proc.alive():
                raise AssertionError(f"worker exited:\n{proc.output()[-3000:]}")
            return heartbeat.exists() and "ready" in proc.output()

        wait_until(ready, 30, what="worker ready")
        return proc

    def start_scheduler(self, **env: str) -> Proc:
        proc = spawn("scheduler", PROCFILE["scheduler"], self.env(**env), self.log_dir)
        self.procs.append(proc)
        wait_until(lambda: "scheduler started" in proc.output(), 30, what="scheduler start")
        return proc

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def client(self, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.api_url, headers=headers, timeout=30)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM to every process at once, so their grace periods run side by side."""
        for proc in self.procs:
            proc.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in reversed(self.procs):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            proc.stop(timeout=0.1)  # kills what is left of it, children included
        self.procs.clear()
