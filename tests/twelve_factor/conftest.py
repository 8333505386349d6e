"""Helpers for the twelve-factor proofs (one module per factor, issue 9).

The stack fixtures (`engines`, `stack`, `new_stack`) come from tests/conftest.py;
these helpers add what the factor checks need beyond them: processes started in
a chosen working directory, with a chosen (even minimal) environment, and with
stdout kept apart from stderr.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.engines import ROOT
from tests.support.processes import VENV_BIN, Proc, wait_until

# tilt_stubs imports helm_render as a top-level module (tests/deploy is not a package).
sys.path.insert(0, str(ROOT / "tests" / "deploy"))

SRC_ROOTS = {
    "conveyor-common": ROOT / "libs" / "common",
    "conveyor-api": ROOT / "services" / "api",
    "conveyor-worker": ROOT / "services" / "worker",
}


@dataclass
class Spawned(Proc):
    """A Proc whose stderr went to its own file."""

    err_path: Path | None = None

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace") if self.err_path else ""


def spawn_in(
    name: str,
    command: str,
    env: dict[str, str],
    cwd: Path,
    log_dir: Path,
    *,
    split_stderr: bool = False,
) -> Spawned:
    """Like tests.support.processes.spawn, but in `cwd`, optionally with stderr apart."""
    log_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.monotonic_ns()
    out_path = log_dir / f"{name}-{stamp}.out"
    err_path = log_dir / f"{name}-{stamp}.err" if split_stderr else None
    with out_path.open("wb") as out:
        err = err_path.open("wb") if err_path else None
        try:
            popen = subprocess.Popen(
                shlex.split(command),
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=err if err else subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            if err:
                err.close()
    return Spawned(name, popen, out_path, env, err_path)


def minimal_env(**values: str) -> dict[str, str]:
    """Only what is given, plus a PATH that finds the venv's python."""
    return {"PATH": f"{VENV_BIN}{os.pathsep}/usr/bin:/bin", **values}


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_api(proc: Proc, port: int, timeout: float = 30, path: str = "/readyz") -> None:
    def ready() -> bool:
        if not proc.alive():
            raise AssertionError(
                f"{proc.name} exited {proc.popen.returncode}:\n{proc.output()[-3000:]}"
            )
        return http_ok(f"http://127.0.0.1:{port}{path}")

    wait_until(ready, timeout, what=f"{proc.name} {path} on port {port}")


def wait_output(proc: Proc, text: str, timeout: float = 30) -> None:
    def seen() -> bool:
        if not proc.alive():
            raise AssertionError(
                f"{proc.name} exited {proc.popen.returncode}:\n{proc.output()[-3000:]}"
            )
        return text in proc.output()

    wait_until(seen, timeout, what=f"{text!r} from {proc.name}")
