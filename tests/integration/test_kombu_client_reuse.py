"""kombu's Redis channel reuses one redis-py client for its synchronous calls
(kombu_client_reuse.py), and still acks and redelivers like stock kombu."""

from __future__ import annotations

from kombu import Connection, Queue

from conveyor.worker.kombu_client_reuse import reuse_sync_clients
from tests.conftest import fresh_redis_url
from tests.support.engines import Engines


def test_one_client_per_channel_pool_and_acks_still_land(engines: Engines) -> None:
    reuse_sync_clients()
    reuse_sync_clients()  # idempotent
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
