"""compat entry kombu.tolerate_lost_connection, against a real Redis: on a
channel that lost its broker connection, stock kombu raises from restore and
ack (Celery then ends the whole worker); patched, both pass, and the unacked
message is still restored later, by kombu's visibility timeout."""

from __future__ import annotations

import pytest
import redis
from kombu import Connection, Queue

from conveyor.worker.compat.kombu import tolerate_lost_connection
from tests.conftest import fresh_redis_url
from tests.support.engines import Engines
from tests.support.kombu_compat import lose_connection, pristine_kombu


@pytest.fixture(autouse=True)
def _pristine(monkeypatch: pytest.MonkeyPatch) -> None:
    pristine_kombu(monkeypatch)


def _delivered_then_lost(url: str, queue: Queue) -> tuple[Connection, object, object]:
    conn = Connection(url)
    channel = conn.channel()
    conn.Producer(channel).publish({"job": 1}, routing_key=queue.name, declare=[queue])
    message = queue(channel).get(no_ack=False)
    assert message is not None
    lose_connection(conn, channel)
    return conn, channel, message


def test_stock_kombu_raises_on_a_channel_that_lost_its_connection(engines: Engines) -> None:
    url = fresh_redis_url(engines)
    _, channel, message = _delivered_then_lost(url, Queue("lost-stock"))
    with pytest.raises(AttributeError):
        channel.qos.restore_unacked()  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        message.ack()  # type: ignore[attr-defined]
    channel.qos._delivered.clear()  # type: ignore[attr-defined]  # else kombu retries at exit


def test_patched_restore_and_ack_pass_and_the_message_comes_back(engines: Engines) -> None:
    assert tolerate_lost_connection()
    assert tolerate_lost_connection()  # idempotent
    url = fresh_redis_url(engines)
    queue = Queue("lost-patched")
    _, channel, _ = _delivered_then_lost(url, queue)
    channel.qos.restore_unacked()  # type: ignore[attr-defined]
    assert not channel.qos._delivered  # type: ignore[attr-defined]
    # Still recorded as unacked in Redis: nothing was lost...
    assert redis.Redis.from_url(url).hlen("unacked") == 1
    # ...and a late ack on the dead channel is forgotten locally, without raising.
    _, _, other = _delivered_then_lost(url, Queue("lost-ack"))
    other.ack()  # type: ignore[attr-defined]
    assert other.acknowledged  # type: ignore[attr-defined]

    # A reconnected worker: kombu's visibility timeout puts the message back.
    with Connection(url, transport_options={"visibility_timeout": 0}) as fresh:
        fresh_channel = fresh.channel()
        fresh_channel.qos.restore_visible(num=10)
        again = queue(fresh_channel).get(no_ack=True)
        assert again is not None and again.payload == {"job": 1}
