"""The container tier: the real images on a real Docker engine.

No engine means failure, never a skip: CI must not pass a tier it could not run.
(To leave this tier out on purpose, deselect it: `pytest -m "not container"`.)

Environment:
  SANDBOX_PYTHON_IMAGE    base for the builds (default: the Dockerfile's python:3.12-slim)
  SANDBOX_POSTGRES_IMAGE  default postgres:16
  SANDBOX_REDIS_IMAGE     default redis:7
  DOCKER_CLI              the docker client to use (default /usr/bin/docker if present)
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.container.dockercli import (
    DOCKER,
    ROOT,
    Session,
    build,
    docker,
    engine_problem,
    image_size_mb,
)

API_IMAGE = "conveyor-api:test"
WORKER_IMAGE = "conveyor-worker:test"
TEST_VERSION = "0.0.0+container-test"
TEST_SOURCE = "https://example.org/conveyor"

_timings: dict[str, str] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/container" in str(item.fspath):
            item.add_marker(pytest.mark.container)
            # A cold build of both images can take minutes on a slow mirror.
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(900))


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if _timings:
        terminalreporter.section("container images")
        for key, value in _timings.items():
            terminalreporter.write_line(f"{key}: {value}")


def git_revision() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
    except OSError:
        return "0" * 40
    return done.stdout.strip() if done.returncode == 0 else "0" * 40


@pytest.fixture(scope="session")
def docker_engine() -> str:
    problem = engine_problem()
    if problem:
        pytest.fail(
            "The container tier needs a Docker engine, and none answers "
            f"({DOCKER}: {problem}). Start one (docs/develop/testing.md says how), "
            "or deselect this tier "
            'explicitly with -m "not container".',
            pytrace=False,
        )
    return DOCKER


@dataclass(frozen=True)
class Images:
    api: str
    worker: str
    version: str
    revision: str
    source: str


@pytest.fixture(scope="session")
def images(docker_engine: str) -> Images:
    revision = git_revision()
    build_args = {"VERSION": TEST_VERSION, "GIT_REVISION": revision, "SOURCE_URL": TEST_SOURCE}
    if os.environ.get("SANDBOX_PYTHON_IMAGE"):
        build_args["PYTHON_IMAGE"] = os.environ["SANDBOX_PYTHON_IMAGE"]
    for target, tag in (("api", API_IMAGE), ("worker", WORKER_IMAGE)):
        seconds = build(target, tag, build_args)
        _timings[f"{tag} build"] = f"{seconds:.1f}s, {image_size_mb(tag):.0f} MB"
    return Images(API_IMAGE, WORKER_IMAGE, TEST_VERSION, revision, TEST_SOURCE)


@pytest.fixture(scope="session")
def session(docker_engine: str) -> Iterator[Session]:
    """Owns every container and network; removes them even when tests fail."""
    made = Session()
    try:
        yield made
    finally:
        made.cleanup()


@pytest.fixture(scope="session")
def postgres_image() -> str:
    return os.environ.get("SANDBOX_POSTGRES_IMAGE", "postgres:16")


@pytest.fixture(scope="session")
def redis_image() -> str:
    return os.environ.get("SANDBOX_REDIS_IMAGE", "redis:7")


def exec_ok(container: str, *command: str) -> bool:
    return docker("exec", container, *command, check=False, timeout=20).returncode == 0
