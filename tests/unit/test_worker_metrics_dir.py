"""The worker's multiprocess metrics directory: prometheus_client reads
PROMETHEUS_MULTIPROC_DIR once, when first imported, so the directory must be
set before that, or the worker refuses to start rather than serve empty metrics."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from conveyor.worker.metrics_server import MULTIPROC_ENV, prepare_multiprocess_dir


def test_a_configured_directory_is_emptied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "counter_123.db").write_bytes(b"stale")
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    assert prepare_multiprocess_dir() == tmp_path
    assert list(tmp_path.iterdir()) == []


def test_too_late_for_prometheus_client_stops_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    import prometheus_client  # noqa: F401

    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    assert "prometheus_client" in sys.modules
    with pytest.raises(RuntimeError, match="imported before PROMETHEUS_MULTIPROC_DIR"):
        prepare_multiprocess_dir()


def test_before_prometheus_client_a_private_directory_is_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    monkeypatch.delitem(sys.modules, "prometheus_client", raising=False)
    path = prepare_multiprocess_dir()
    try:
        assert path.is_dir() and path.name.startswith("conveyor-worker-metrics-")
        assert os.environ[MULTIPROC_ENV] == str(path)
    finally:
        # Not monkeypatch.delenv: its undo would put the variable back, and every
        # later stack this test process starts would inherit a removed directory.
        os.environ.pop(MULTIPROC_ENV, None)
        path.rmdir()
