"""HTTP load from greenlets, shared by the gevent-driven benchmarks
(`e2e_latency`, the soak's capacity and its load).

geventhttpclient (locust's fast client): httpx's asyncio client spent more CPU
than the API it measured and, from 16 clients up, was the bottleneck; in the
soak it fell behind its schedule after faults.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import gevent
from geventhttpclient import HTTPClient


def api_client(
    url: str, key: str, *, concurrency: int, timeout: float, connect_timeout: float = 5
) -> HTTPClient:
    """A pooled client (`concurrency` connections) that sends the API key and JSON."""
    return HTTPClient.from_url(
        url,
        concurrency=concurrency,
        connection_timeout=connect_timeout,
        network_timeout=timeout,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )


def closed_loops(clients: int, seconds: float, step: Callable[[], None]) -> list[gevent.Greenlet]:
    """`clients` greenlets, each running `step` back to back until `seconds`
    have passed; join them (with raise_error) to wait and to see a failure."""
    stop = time.monotonic() + seconds

    def loop() -> None:
        while time.monotonic() < stop:
            step()

    return [gevent.spawn(loop) for _ in range(clients)]
