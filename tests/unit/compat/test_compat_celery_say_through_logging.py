"""compat entry celery.say_through_logging: stock Celery writes its shutdown
notices as raw text to the stream it is given (stdout, in the worker); patched,
they become log events and the stream gets nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conveyor.worker.compat.celery import say_through_logging


@pytest.fixture
def celery_worker(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    import celery.apps.worker as module

    monkeypatch.setattr(module, "safe_say", module.safe_say)
    return module


def test_stock_safe_say_writes_raw_text(celery_worker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "stdout"
    with out.open("w") as stream:
        celery_worker.safe_say("worker: Warm shutdown (MainProcess)", stream)
    assert out.read_text() == "\nworker: Warm shutdown (MainProcess)\n"


def test_patched_notices_are_log_events(  # type: ignore[no-untyped-def]
    celery_worker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from conveyor.common.logging import configure_logging

    configure_logging("INFO", "json")  # the worker's: JSON lines on stdout
    assert say_through_logging()
    out = tmp_path / "stdout"
    with out.open("w") as stream:
        celery_worker.safe_say("worker: Warm shutdown (MainProcess)", stream)
    assert out.read_text() == ""
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {
        "logger": "conveyor.worker",
        "message": "worker: Warm shutdown (MainProcess)",
    }.items() <= lines[-1].items()
