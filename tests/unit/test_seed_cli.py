"""`make seed`'s script refuses bad input with one line and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.engines import ROOT, free_port


def _seed(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "scripts/seed.py", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_job_count_below_one_is_refused() -> None:
    done = _seed("--jobs", "0")
    assert done.returncode == 2
    assert "--jobs: must be at least 1" in done.stderr


def test_an_unreachable_database_is_one_line_not_a_traceback() -> None:
    done = _seed("--jobs", "5", DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    assert done.returncode == 1
    assert done.stderr.startswith("seed: cannot reach the database")
    assert done.stderr.count("\n") == 1  # one line
    assert "Traceback" not in done.stderr
