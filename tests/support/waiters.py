"""Many clients waiting at once on `GET /v1/jobs/{id}?wait=N`, for tests and the bench.

Each waiter has its own httpx client (one connection): a single client's pool
serving hundreds of concurrent requests costs the client seconds of CPU, which
would then be misread as the server's latency.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time

import httpx


async def wait_on_jobs(
    base_url: str, key: str, job_ids: list[str], waiters: int, wait_s: float
) -> list[tuple[int, str | None, float]]:
    """`waiters` requests spread over `job_ids`: (HTTP status, job status, seconds) each."""
    tls = ssl.create_default_context()  # built once; each client would build its own
    headers = {"Authorization": f"Bearer {key}"}

    async def one(n: int) -> tuple[int, str | None, float]:
        async with httpx.AsyncClient(
            base_url=base_url, headers=headers, verify=tls, timeout=wait_s + 30
        ) as client:
            started = time.monotonic()
            response = await client.get(f"/v1/jobs/{job_ids[n % len(job_ids)]}?wait={wait_s}")
            took = time.monotonic() - started
            status = response.json().get("status") if response.status_code == 200 else None
            return response.status_code, status, took

    return list(await asyncio.gather(*(one(n) for n in range(waiters))))


def waiting_now(base_url: str) -> float:
    """The API's `conveyor_api_job_waiters` gauge."""
    text = httpx.get(f"{base_url}/metrics", timeout=5).text
    found = re.search(r"^conveyor_api_job_waiters (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else -1.0
