"""Conveyor's load generator (Locust).

Users submit each kind, poll their jobs until done, and list. Configure with
environment variables (Locust's own LOCUST_* ones work too):

  CONVEYOR_URL        the API (default http://127.0.0.1:8000)
  CONVEYOR_API_KEY    a key from scripts/create_api_key.py (required)
  LOADTEST_MIX        weights, e.g. "sleep=6,hash=2,primes=1,fail=1,list=1"
  LOADTEST_SLEEP_MS   ms for sleep jobs (default 200)
  LOADTEST_HASH_ITERATIONS / LOADTEST_PRIMES_LIMIT   job sizes
  LOCUST_USERS, LOCUST_SPAWN_RATE, LOCUST_RUN_TIME, LOCUST_HEADLESS

  locust -f scripts/loadtest/locustfile.py --headless -u 20 -r 5 -t 1m --html report.html
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

from locust import FastHttpUser, between, events, task
from locust.env import Environment

DEFAULT_MIX = "sleep=6,hash=2,primes=1,fail=1,list=1"


def parse_mix(raw: str) -> dict[str, int]:
    weights: dict[str, int] = {}
    for part in raw.split(","):
        name, _, weight = part.strip().partition("=")
        if name not in {"sleep", "hash", "primes", "fail", "list"} or not weight.isdigit():
            raise ValueError(f"LOADTEST_MIX: bad entry {part!r} (expected e.g. {DEFAULT_MIX})")
        weights[name] = int(weight)
    return weights


MIX = parse_mix(os.environ.get("LOADTEST_MIX", DEFAULT_MIX))
SLEEP_MS = int(os.environ.get("LOADTEST_SLEEP_MS", "200"))
HASH_ITERATIONS = int(os.environ.get("LOADTEST_HASH_ITERATIONS", "50000"))
PRIMES_LIMIT = int(os.environ.get("LOADTEST_PRIMES_LIMIT", "200000"))
POLL_TIMEOUT_S = float(os.environ.get("LOADTEST_POLL_TIMEOUT_S", "30"))


@events.init.add_listener
def _check_key(environment: Environment, **_: Any) -> None:
    if not os.environ.get("CONVEYOR_API_KEY"):
        raise SystemExit("CONVEYOR_API_KEY is required (make up prints one)")


class ConveyorUser(FastHttpUser):
    host = os.environ.get("CONVEYOR_URL", "http://127.0.0.1:8000")
    wait_time = between(0.05, 0.5)

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Bearer {os.environ['CONVEYOR_API_KEY']}"}

    def submit_and_poll(self, kind: str, params: dict[str, Any]) -> None:
        with self.client.post(
            "/v1/jobs",
            json={"kind": kind, "params": params},
            headers=self.headers,
            name=f"POST /v1/jobs [{kind}]",
            catch_response=True,
        ) as response:
            if response.status_code != 202:
                response.failure(f"{response.status_code}: {response.text[:200]}")
                return
            job_id = response.json()["id"]
        started = time.monotonic()
        while time.monotonic() - started < POLL_TIMEOUT_S:
            job = self.client.get(
                f"/v1/jobs/{job_id}", headers=self.headers, name="GET /v1/jobs/{id}"
            ).json()
            if job["status"] in {"succeeded", "failed", "cancelled"}:
                # A custom event, so the report shows submit-to-done time per kind.
                events.request.fire(
                    request_type="JOB",
                    name=f"{kind} done ({job['status']})",
                    response_time=(time.monotonic() - started) * 1000,
                    response_length=0,
                    exception=None,
                    context={},
                )
                return
            time.sleep(0.25)

    @task(MIX.get("sleep", 0))
    def sleep_job(self) -> None:
        self.submit_and_poll("sleep", {"ms": SLEEP_MS})

    @task(MIX.get("hash", 0))
    def hash_job(self) -> None:
        self.submit_and_poll(
            "hash",
            {
                "data": str(random.random()),
                "iterations": HASH_ITERATIONS,
            },
        )

    @task(MIX.get("primes", 0))
    def primes_job(self) -> None:
        self.submit_and_poll("primes", {"limit": PRIMES_LIMIT})

    @task(MIX.get("fail", 0))
    def fail_job(self) -> None:
        self.submit_and_poll("fail", {"rate": 0.3})

    @task(MIX.get("list", 0))
    def list_jobs(self) -> None:
        self.client.get("/v1/jobs?limit=20", headers=self.headers, name="GET /v1/jobs")
