"""Issue 4, item 4: the integration suite's testcontainers path runs in CI at least once.

Without this, a machine where the embedded engines work would only ever exercise
the embedded path. Here a small integration module runs as a subprocess with
CONVEYOR_TEST_ENGINES=docker, which fails (never falls back) if Docker cannot
serve Postgres and Redis.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.container.dockercli import ROOT

SMOKE = "tests/integration/test_job_kinds.py"


def test_integration_suite_runs_on_testcontainers(docker_engine: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["CONVEYOR_TEST_ENGINES"] = "docker"
    for name in ("TEST_DATABASE_URL", "TEST_REDIS_URL"):
        env.pop(name, None)
    if env.get("SANDBOX_POSTGRES_IMAGE"):
        # The stand-in engine cannot pull testcontainers' Ryuk reaper.
        env.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", SMOKE, "-q", "-s", "-p", "no:cacheprovider"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert "integration engines: docker" in output, output[-3000:]
    assert " passed" in output and " skipped" not in output, output[-3000:]
