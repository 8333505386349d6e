"""A checkout in a folder that only its owner can enter (issue 15).

As root, `make up` runs Postgres as `nobody`, which cannot enter such a folder
(/root, any `mktemp -d`): the binaries, their shared libraries and the cluster
must come from outside it. As any other user the same test runs as that user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.commands import Command
from tests.support.engines import ROOT, free_port
from tests.support.make_up import QUICKSTART_PORT, check_quickstart, port_is_free


def private_clone(base: Path) -> Path:
    """`git clone` of this checkout, plus the changes not yet committed (so a
    developer tests what they have); CI's clean clone has none."""
    clone = base / "conveyor"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)], check=True)
    changed = subprocess.run(
        ["git", "ls-files", "--modified", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in changed)):
        if (ROOT / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, clone / name)
    deleted = subprocess.run(
        ["git", "ls-files", "--deleted", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in deleted)):
        (clone / name).unlink(missing_ok=True)
    return clone


@pytest.fixture
def private_dir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="conveyor-private-"))  # mode 0700, like /root
    assert base.stat().st_mode & 0o777 == 0o700
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_make_up_quickstart_and_demo_from_a_0700_checkout(private_dir: Path) -> None:
    port_is_free(QUICKSTART_PORT)
    clone = private_clone(private_dir)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "MAKEFLAGS", "MAKELEVEL"}
    }
    env.update(
        EMBEDDED_POSTGRES_PORT=str(free_port()),
        EMBEDDED_REDIS_PORT=str(free_port()),
        PATH=_without_venv(os.environ.get("PATH", os.defpath)),
    )
    stack = Command(["make", "up"], clone, env, private_dir / "make-up.log")
    try:
        stack.wait_for(r"^API key: \S+$", 600)  # a fresh .venv first: `make install`
        key = stack.output().split("API key: ", 1)[1].split()[0]
        check_quickstart(clone, key, clone / "README.md")
        stack.ctrl_c()
        stack.stopped_within(15)
    finally:
        stack.kill()
    assert "make up: stopped" in stack.output()
    cluster = clone / ".data" / "postgres"
    if os.geteuid() == 0:
        # nobody cannot enter the clone: the cluster lives outside it, linked from .data/.
        assert cluster.is_symlink(), sorted(p.name for p in cluster.parent.iterdir())
        target = cluster.resolve()
        assert (target / "PG_VERSION").exists()
        done = subprocess.run(["make", "clean-data"], cwd=clone, env=env, capture_output=True)
        assert done.returncode == 0, done.stderr
        assert not target.exists() and not target.parent.exists()
    else:
        assert (cluster / "PG_VERSION").exists()

    # The bench's and the demo's engines take the same path (the binaries' copy).
    out = private_dir / "demo"
    demo = Command(
        ["make", "demo-scaling", f"ARGS=--smoke --out {out}"], clone, env, private_dir / "demo.log"
    )
    try:
        assert demo.popen.wait(300) == 0, demo.output()[-3000:]
    finally:
        demo.kill()
    assert (out / "scaling.png").exists() and "| cpu |" in (out / "scaling.md").read_text()


def _without_venv(path: str) -> str:
    # The clone must make and use its own .venv, not the one running these tests.
    ours = str(Path(sys.executable).parent)
    return os.pathsep.join(p for p in path.split(os.pathsep) if p != ours)
