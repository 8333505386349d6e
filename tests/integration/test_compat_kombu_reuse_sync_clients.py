"""compat entry kombu.reuse_sync_clients, against a real Redis: stock kombu
builds a redis-py client per synchronous call; patched, one per channel pool,
and acks and redelivery still behave like stock kombu."""

from __future__ import annotations

import pytest
from kombu import Connection, Queue

from conveyor.worker.compat.kombu import reuse_sync_clients
from tests.conftest import fresh_redis_url
from tests.support.engines import Engines
from tests.support.kombu_compat import pristine_kombu


@pytest.fixture(autouse=True)
def _pristine(monkeypatch: pytest.MonkeyPatch) -> None:
    pristine_kombu(monkeypatch)


def test_stock_kombu_builds_a_client_per_call(engines: Engines) -> None:
    with Connection(fresh_redis_url(engines)) as conn:
        channel = conn.channel()
        assert channel._create_client() is not channel._create_client()
        channel.close()


def test_one_client_per_channel_pool_and_acks_still_land(engines: Engines) -> None:
    assert reuse_sync_clients()
    assert reuse_sync_clients()  # idempotent
    queue = Queue("reuse-test")
    with Connection(fresh_redis_url(engines)) as conn:
        channel = conn.channel()
        first = channel._create_client()
        assert channel._create_client() is first
        assert channel._create_client(asynchronous=True) is not first

        producer = conn.Producer(channel)
        for n in range(3):
            producer.publish({"n": n}, routing_key=queue.name, declare=[queue])
        bound = queue(channel)
        acked = bound.get(no_ack=False)
        unacked = bound.get(no_ack=False)
        assert acked is not None and unacked is not None
        acked.ack()
        client = channel._create_client()
        assert client is first
        assert client.hlen("unacked") == 1  # only the message not acked yet

        # A reconnect gives the channel a new pool: the client follows it.
        channel._pool = None
        assert channel._create_client() is not first
        unacked.ack()
        assert channel._create_client().hlen("unacked") == 0
        channel.close()
