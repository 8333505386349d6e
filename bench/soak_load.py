"""The soak's clients: an open-loop stream of submits at a fixed rate, a mix
of kinds, each retried with its Idempotency-Key until accepted, as a careful
client does through restarts. Every response's status is counted."""

from __future__ import annotations

import collections
import json
import random
import threading
import time
import uuid
from http.client import HTTPException
from typing import Any

import gevent
from gevent.pool import Group
from geventhttpclient import HTTPClient

from bench.http_load import api_client

# (weight, kind, params): mostly short jobs, some CPU, a few that fail and retry.
MIX: list[tuple[int, str, dict[str, Any]]] = [
    (60, "sleep", {"ms": 0}),
    (15, "sleep", {"ms": 20}),
    (10, "hash", {"data": "soak", "iterations": 2000}),
    (10, "primes", {"limit": 5000}),
    (5, "fail", {"rate": 0.5}),
]
GIVE_UP_S = 120  # a submit not accepted in this long counts as refused


def pick(rng: random.Random) -> dict[str, Any]:
    _, kind, params = rng.choices(MIX, weights=[w for w, *_ in MIX])[0]
    job: dict[str, Any] = {"kind": kind, "params": params}
    if kind == "fail":
        job["max_attempts"] = 3
    return job


class Load:
    """Submits `rate` jobs a second on a thread of its own until `stop()`.

    Greenlets on that thread's own gevent hub, with bench/http_load.py's client."""

    def __init__(self, url: str, key: str, rate: float, seed: int) -> None:
        self.url, self.key, self.rate = url, key, rate
        self.rng = random.Random(seed)
        self.accepted: dict[str, str] = {}  # idempotency key -> job id
        self.refused = 0  # gave up after GIVE_UP_S
        self.statuses: collections.Counter[int] = collections.Counter()
        self.connection_errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(GIVE_UP_S + 30)

    def _submit(self, client: HTTPClient, job: dict[str, Any]) -> None:
        key = uuid.uuid4().hex
        body = json.dumps(job)
        deadline = time.monotonic() + GIVE_UP_S
        while time.monotonic() < deadline:
            try:
                response = client.post("/v1/jobs", body=body, headers={"Idempotency-Key": key})
                text = response.read()
            except (OSError, HTTPException):
                self.connection_errors += 1  # the API is restarting: not a response
            else:
                self.statuses[response.status_code] += 1
                if response.status_code in (200, 201, 202):
                    self.accepted[key] = json.loads(text)["id"]
                    return
                if response.status_code not in (409, 429, 503) and response.status_code < 500:
                    raise AssertionError(f"{response.status_code}: {text!r}")
            gevent.sleep(0.5)
        self.refused += 1

    def _run(self) -> None:
        client = api_client(self.url, self.key, concurrency=64, timeout=10, connect_timeout=2)
        group = Group()
        begin, k = time.monotonic(), 0
        try:
            while not self._stop.is_set():
                gevent.sleep(max(0.0, begin + k / self.rate - time.monotonic()))
                group.spawn(self._submit, client, pick(self.rng))
                k += 1
            group.join(raise_error=True)
        finally:
            client.close()

    def other_responses(self) -> int:
        """Responses that are neither 2xx, 4xx nor 503: the target is none."""
        return sum(n for code, n in self.statuses.items() if not (200 <= code < 500 or code == 503))
