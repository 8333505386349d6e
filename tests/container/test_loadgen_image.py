"""The `loadgen` target: Locust and the locustfile, runnable as non-root on a read-only root."""

from __future__ import annotations

import os

from tests.container.conftest import TEST_VERSION
from tests.container.dockercli import Session, build, inspect

LOADGEN_IMAGE = "conveyor-loadgen:test"


def test_loadgen_image_runs_the_locustfile(docker_engine: str, session: Session) -> None:
    build_args = {"VERSION": TEST_VERSION}
    if os.environ.get("SANDBOX_PYTHON_IMAGE"):
        build_args["PYTHON_IMAGE"] = os.environ["SANDBOX_PYTHON_IMAGE"]
    build("loadgen", LOADGEN_IMAGE, build_args)
    config = inspect(LOADGEN_IMAGE)["Config"]
    assert config["User"] == "10001:10001"
    assert config["Cmd"] == ["locust", "-f", "scripts/loadtest/locustfile.py"]
    assert config["Labels"]["org.opencontainers.image.version"] == TEST_VERSION
    listed = session.run_once(
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "-e",
        "CONVEYOR_API_KEY=cvk_x_y",
        LOADGEN_IMAGE,
        "locust",
        "-f",
        "scripts/loadtest/locustfile.py",
        "--list",
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "ConveyorUser" in listed.stdout
