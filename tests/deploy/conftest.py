"""Fixtures for the Helm chart tests (tests/deploy/test_helm_*.py).

These tests need `helm` on PATH and the `kubernetes-validate` package. Missing
tools are a failure, not a skip: a chart that was never rendered must not pass.
`make install` puts helm in .venv/bin, and `make test` puts that first on PATH.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import sys
from pathlib import Path

import pytest

# helm_render.py sits beside this file and tests/deploy is not a package: make
# it importable whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import helm_render


@pytest.fixture(scope="session", autouse=True)
def helm_bin() -> str:
    """Every test here renders the chart: without helm, each one fails loudly."""
    try:
        return helm_render.helm_binary()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def kubernetes_validate() -> list[str]:
    """The kubernetes-validate command, run by this interpreter."""
    if importlib.util.find_spec("kubernetes_validate") is None:
        pytest.fail(
            "the kubernetes-validate package is not installed in this interpreter "
            "(it is in the dev lock; `pip install kubernetes-validate` for a scratch run)",
            pytrace=False,
        )
    return [sys.executable, "-m", "kubernetes_validate"]


@pytest.fixture(scope="session")
def procfile() -> dict[str, list[str]]:
    """The repo's Procfile as {process type: argv}. CONVEYOR_PROCFILE may point
    at another copy (only for running these tests before the Procfile exists)."""
    path = Path(os.environ.get("CONVEYOR_PROCFILE") or helm_render.REPO / "Procfile")
    if not path.is_file():
        pytest.fail(
            f"no Procfile at {path}: the chart's commands are checked against it", pytrace=False
        )
    entries = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = shlex.split(command)
    return entries
