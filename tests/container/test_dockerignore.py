"""The repo's .dockerignore, applied by a real BuildKit to a synthetic context.

The context holds a decoy of everything that must never reach an image (.env,
.data, .venv, .git, tests, bytecode) next to what the Dockerfile needs; a
`FROM scratch` + `COPY . /` build exported with `-o type=local` shows exactly
which files BuildKit let through.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.container.dockercli import ROOT, docker

NEEDED = [
    "requirements/uv.txt",
    "requirements/api.txt",
    "requirements/worker.txt",
    "libs/common/src/conveyor/common/__init__.py",
    "libs/common/src/conveyor/common/migrations/env.py",
    "services/api/src/conveyor/api/__main__.py",
    "services/worker/src/conveyor/worker/__main__.py",
    "scripts/migrate.py",
    "scripts/create_api_key.py",
    "scripts/revoke_api_key.py",
]
NEVER = [
    ".env",
    ".env.local",
    ".data/postgres/PG_VERSION",
    ".venv/bin/python",
    ".git/config",
    "tests/conftest.py",
    "tests/container/test_images.py",
    "services/api/tests/test_app.py",
    "services/api/src/conveyor/api/.env",
    "services/api/src/conveyor/api/__pycache__/app.cpython-312.pyc",
    "libs/common/src/conveyor/common/settings.pyc",
    "libs/common/src/conveyor_common.egg-info/PKG-INFO",
    "scripts/local_engines.py",
    "deploy/helm/conveyor/values.yaml",
]


def test_dockerignore_lets_only_the_image_inputs_through(
    docker_engine: str, tmp_path: Path
) -> None:
    context = tmp_path / "context"
    for rel in NEEDED + NEVER:
        path = context / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x\n")
    shutil.copy(ROOT / ".dockerignore", context / ".dockerignore")
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    out = tmp_path / "out"
    docker(
        "build", "-f", str(tmp_path / "Dockerfile"), "-o", f"type=local,dest={out}", str(context),
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
    )  # fmt: skip
    passed = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert sorted(set(NEVER) & passed) == []
    assert sorted(set(NEEDED) - passed) == []
