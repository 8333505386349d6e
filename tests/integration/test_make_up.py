"""`make up` as a new user runs it: the README's quickstart works verbatim,
data survives a restart, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.engines import ROOT, free_port
from tests.support.processes import wait_until

README = ROOT / "README.md"
QUICKSTART_PORT = 8000


def quickstart_commands() -> str:
    text = README.read_text()
    block = re.search(r"<!-- quickstart -->\s*```bash\n(.*?)```", text, re.S)
    assert block, "README.md has no <!-- quickstart --> bash block"
    lines = block.group(1).splitlines()
    # The first lines start the stack and export the key; we did both already.
    body = [ln for ln in lines if not ln.startswith(("make up", "export CONVEYOR_API_KEY"))]
    return "\n".join(body)


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return False


class MakeUp:
    def __init__(self, data_dir: Path, port: int, workers: int = 1) -> None:
        self.log = data_dir.parent / f"make-up-{time.monotonic_ns()}.log"
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
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["make", "up"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> tuple[str, str]:
        def printed() -> re.Match[str] | None:
            assert self.proc.poll() is None, self.output()[-4000:]
            return re.search(r"^API: (\S+)\nAPI key: (\S+)$", self.output(), re.M)

        found = wait_until(printed, 120, what="make up to print the API lines")
        return found.group(1), found.group(2)

    def ctrl_c(self) -> float:
        """SIGINT to the foreground group, as a terminal does; returns seconds to quiet."""
        tree = descendants(self.proc.pid) | {self.proc.pid}
        started = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGINT)
        wait_until(lambda: not any(alive(pid) for pid in tree), 15, what="every process to exit")
        self.proc.wait(5)
        return time.monotonic() - started


@pytest.fixture
def data_dir():  # type: ignore[no-untyped-def]
    # World-traversable: as root, the embedded Postgres runs as nobody.
    base = Path(tempfile.mkdtemp(prefix="conveyor-make-up-"))
    base.chmod(0o755)
    yield base / "data"
    subprocess.run(["rm", "-rf", str(base)], check=False)


def test_make_up_quickstart_restart_and_ctrl_c(data_dir: Path) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", QUICKSTART_PORT))  # the quickstart says 8000: it must be free
    stack = MakeUp(data_dir, QUICKSTART_PORT)
    try:
        url, key = stack.wait_ready()
        assert url == f"http://127.0.0.1:{QUICKSTART_PORT}"
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", quickstart_commands()],
            env={**os.environ, "CONVEYOR_API_KEY": key},
            cwd=data_dir.parent,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        digest = b"hello"
        for _ in range(100_000):
            digest = hashlib.sha256(digest).digest()
        assert '"status":"succeeded"' in run.stdout, run.stdout
        assert digest.hex() in run.stdout
    finally:
        seconds = stack.ctrl_c()
    assert seconds < 10, f"Ctrl-C took {seconds:.1f}s"
    assert "make up: stopped" in stack.output()

    # Data survives: the old key still works after a restart on the same data dir.
    again = MakeUp(data_dir, free_port())
    try:
        url, _ = again.wait_ready()
        listed = subprocess.run(
            ["curl", "-sf", f"{url}/v1/jobs", "-H", f"Authorization: Bearer {key}"],
            capture_output=True,
            text=True,
        )
        assert listed.returncode == 0 and '"kind":"hash"' in listed.stdout
    finally:
        again.ctrl_c()
