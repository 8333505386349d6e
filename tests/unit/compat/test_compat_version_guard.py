"""Every compat entry declines an unsupported version: the patch is not applied,
and one warning names the library and the version found."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import pytest
from kombu.transport import redis as kombu_redis

import conveyor.common.compat as compat
from conveyor.api.compat.fastapi import can_skip_telemetry
from conveyor.common.compat import in_range, version_tuple
from conveyor.common.compat.opentelemetry_celery import celery_instrumentor
from conveyor.common.compat.stdlib_logging import skip_caller_lookup
from conveyor.worker.compat import kombu as kombu_compat
from conveyor.worker.compat.celery import say_through_logging
from tests.support.kombu_compat import pristine_kombu

# What the logging module sets at import (the caller lookup on).
STOCK_SRCFILE = os.path.normcase(logging.addLevelName.__code__.co_filename)


@pytest.fixture
def unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every library reports a version from the future; warnings start afresh."""
    monkeypatch.setattr(compat, "installed_version", lambda distribution: "99.0")
    monkeypatch.setattr(compat, "_warned", set())
    pristine_kombu(monkeypatch)
    monkeypatch.setattr(logging, "_srcfile", STOCK_SRCFILE)
    import celery.apps.worker as celery_worker

    monkeypatch.setattr(celery_worker, "safe_say", celery_worker.safe_say)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "conveyor.compat"]


def test_versions_compare_on_release_numbers() -> None:
    assert version_tuple("0.66b2") == (0, 66)
    assert version_tuple("5.7.0") == (5, 7, 0)
    assert in_range("5.7.0", "5.7", "5.8")
    assert in_range("0.66b2", "0.66", "0.67")
    assert not in_range("5.8.0", "5.7", "5.8")
    assert not in_range("5.6.9", "5.7", "5.8")


def test_kombu_entries_decline(unsupported: None, caplog: pytest.LogCaptureFixture) -> None:
    stock_restore = kombu_redis.QoS.restore_unacked
    stock_create = kombu_redis.Channel._create_client
    for _ in range(2):
        assert kombu_compat.tolerate_lost_connection() is False
        assert kombu_compat.reuse_sync_clients() is False
    assert kombu_redis.QoS.restore_unacked is stock_restore
    assert kombu_redis.Channel._create_client is stock_create
    assert _warnings(caplog) == [
        "compat entry kombu.tolerate_lost_connection not applied:"
        " kombu 99.0 is outside the verified range >=5.7,<5.8",
        "compat entry kombu.reuse_sync_clients not applied:"
        " kombu 99.0 is outside the verified range >=5.7,<5.8",
    ]


def test_celery_entry_declines(unsupported: None, caplog: pytest.LogCaptureFixture) -> None:
    import celery.apps.worker as celery_worker

    stock = celery_worker.safe_say
    assert say_through_logging() is False
    assert say_through_logging() is False
    assert celery_worker.safe_say is stock
    assert len(_warnings(caplog)) == 1
    assert "celery 99.0" in _warnings(caplog)[0]


def test_opentelemetry_celery_entry_declines(
    unsupported: None, caplog: pytest.LogCaptureFixture
) -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    for _ in range(2):
        assert type(celery_instrumentor()) is CeleryInstrumentor
    assert len(_warnings(caplog)) == 1
    assert "opentelemetry-instrumentation-celery 99.0" in _warnings(caplog)[0]


def test_fastapi_entry_declines(unsupported: None, caplog: pytest.LogCaptureFixture) -> None:
    assert [can_skip_telemetry(), can_skip_telemetry()] == [False, False]
    assert _warnings(caplog) == [
        "compat entry fastapi.skip_telemetry_when_unsampled not applied:"
        " fastapi 99.0 is outside the verified range >=0.165,<0.166"
    ]


def test_stdlib_logging_entry_declines(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(compat, "_warned", set())
    monkeypatch.setattr(logging, "_srcfile", STOCK_SRCFILE)
    monkeypatch.setattr("platform.python_version", lambda: "3.99.0")
    before = logging._srcfile
    calls: list[Callable[[], bool]] = [skip_caller_lookup, skip_caller_lookup]
    assert [call() for call in calls] == [False, False]
    assert logging._srcfile is before and before is not None
    assert _warnings(caplog) == [
        "compat entry stdlib_logging.no_caller_lookup not applied:"
        " python 3.99.0 is outside the verified range >=3.11,<3.15"
    ]
