"""The README's quickstart, run as a reader runs it against a `make up` stack."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
from pathlib import Path

from tests.support.commands import Command
from tests.support.engines import ROOT, free_port

QUICKSTART_PORT = 8000  # the quickstart's URLs say 8000


def port_is_free(port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))  # raises if something else listens there


def quickstart_commands(readme: Path = ROOT / "README.md") -> str:
    block = re.search(r"<!-- quickstart -->\s*```bash\n(.*?)```", readme.read_text(), re.S)
    assert block, f"{readme} has no <!-- quickstart --> bash block"
    # The first lines start the stack and export the key; the caller did both.
    skip = ("make up", "export CONVEYOR_API_KEY")
    return "\n".join(ln for ln in block.group(1).splitlines() if not ln.startswith(skip))


def check_quickstart(cwd: Path, key: str, readme: Path = ROOT / "README.md") -> None:
    """Runs the quickstart block verbatim; the hash job must succeed with the right digest."""
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", quickstart_commands(readme)],
        env={**os.environ, "CONVEYOR_API_KEY": key},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    digest = b"hello"
    for _ in range(100_000):
        digest = hashlib.sha256(digest).digest()
    assert '"status":"succeeded"' in run.stdout, run.stdout
    assert digest.hex() in run.stdout, run.stdout


def make_up_command(data_dir: Path, port: int, workers: int = 1) -> Command:
    """`make up` on its own data dir, API port and embedded engines' ports."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}
    }
    env.update(
        PORT=str(port),
        CONVEYOR_DATA_DIR=str(data_dir),
        WORKERS=str(workers),
        EMBEDDED_POSTGRES_PORT=str(free_port()),
        EMBEDDED_REDIS_PORT=str(free_port()),
    )
    return Command(["make", "up"], ROOT, env, data_dir.parent / f"make-up-{port}.log")
