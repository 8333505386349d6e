"""Helpers for the kombu compat tests: undo the class patches after each test,
and put a channel in the state Celery leaves it in after a broker outage."""

from __future__ import annotations

from typing import Any

import pytest
from kombu.transport import redis as kombu_redis

from conveyor.worker.compat import kombu as kombu_compat


def pristine_kombu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a test patches on kombu's Redis classes is undone at its end."""
    for name in ("restore_unacked", "ack", "reject"):
        monkeypatch.setattr(kombu_redis.QoS, name, kombu_redis.QoS.__dict__[name])
    monkeypatch.setattr(
        kombu_redis.Channel, "_create_client", kombu_redis.Channel.__dict__["_create_client"]
    )
    monkeypatch.setattr(kombu_redis.QoS, kombu_compat._PATCHED, False, raising=False)
    monkeypatch.setattr(kombu_redis.Channel, kombu_compat._REUSES, False, raising=False)


def lose_connection(connection: Any, channel: Any) -> None:
    """What Celery does when the broker connection drops: the transport lets go
    of the channel (its `connection` becomes None) and its pools are closed,
    while messages it delivered are still unacked."""
    connection.transport.close_channel(channel)
    channel._disconnect_pools()
