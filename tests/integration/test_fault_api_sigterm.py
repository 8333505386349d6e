"""Fault: the API gets SIGTERM under load (a rolling update, a scale-down).

Uvicorn stops listening at once, then lets every request it has already
started reading run to completion, for up to GRACEFUL_TIMEOUT_SECONDS, and
exits 0. No accepted request fails: requests caught mid-body at the signal
still get their complete 202. Clients that try to connect after the listener
closed are refused, which is not an accepted request; and each of those
requests is checked against the database (by its Idempotency-Key) to prove the
server never took it in. Every 202 job then runs to completion.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import time
import uuid
from collections import Counter
from pathlib import Path

from tests.support.faults import (
    FAST_TIMINGS,
    ExitWatch,
    Load,
    accepted_by,
    fault_bed,
    jobs_by_id,
    status_counts,
    wait_for_jobs,
)
from tests.support.processes import timed_wait

GRACEFUL_S = float(FAST_TIMINGS["GRACEFUL_TIMEOUT_SECONDS"])
SLOW_CLIENTS = 5
BODY_DELAY_S = 1.5  # the slow clients send the rest of their body this long after SIGTERM
MIN_JOBS = 200


def start_slow_request(port: int, key: str) -> tuple[socket.socket, bytes, str]:
    """Send the headers and half of the body of a submission; return the socket,
    the rest of the body and the request's Idempotency-Key."""
    idempotency_key = uuid.uuid4().hex
    body = json.dumps({"kind": "sleep", "params": {"ms": 10}}).encode()
    head = (
        "POST /v1/jobs HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Idempotency-Key: {idempotency_key}\r\n"
        "\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=GRACEFUL_S + 10)
    half = len(body) // 2
    sock.sendall(head + body[:half])
    return sock, body[half:], idempotency_key


def finish_slow_request(sock: socket.socket, rest: bytes) -> tuple[int, dict[str, str], bytes]:
    sock.sendall(rest)
    response = http.client.HTTPResponse(sock)
    response.begin()
    body = response.read()  # raises IncompleteRead if the response was cut short
    sock.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def test_sigterm_api_completes_accepted_requests_and_every_job_runs(tmp_path: Path) -> None:
    with fault_bed(tmp_path) as bed:
        stack, db = bed.stack, bed.database_url
        api = stack.start_api()
        stack.start_scheduler()
        stack.start_worker(concurrency=4)
        key = stack.create_key("api-sigterm")

        with Load(stack.api_url, key, threads=6, interval_s=0.01, job_ms=20) as load:
            load.wait_accepted(MIN_JOBS, timeout=60)
            slow = [start_slow_request(stack.api_port, key) for _ in range(SLOW_CLIENTS)]
            # Accepted by the server, so in flight at the signal; one still in
            # the listen backlog would just be refused, like a late client.
            _, accepted_s = timed_wait(
                lambda: accepted_by(api, [sock for sock, _, _ in slow]),
                30,
                0.01,
                "the API accepting the slow clients' connections",
            )
            watch = ExitWatch(api)
            signalled_at = time.monotonic()
            api.signal(signal.SIGTERM)
            time.sleep(BODY_DELAY_S)
            assert api.alive(), "the API exited with requests still in flight"
            # Complete 202s for these (checked below) show the API waited for
            # them: their bodies were sent only now, 1.5 s after the signal.
            finished = [finish_slow_request(sock, rest) for sock, rest, _ in slow]
            # A deadline past the graceful timeout, where a supervisor would SIGKILL.
            code, took_s = watch.result(since=signalled_at, timeout=GRACEFUL_S + 5)
        outcomes = load.outcomes

        assert code == 0, f"API exited {code}:\n{api.output()[-3000:]}"
        # In-flight at the signal, finished after it: complete 202s, not cut off.
        for status, headers, body in finished:
            assert status == 202, (status, body)
            assert headers.get("connection") == "close", headers
            assert json.loads(body)["status"] in ("queued", "running", "succeeded")

        rows = jobs_by_id(db)
        by_key = {row["idempotency_key"]: row for row in rows.values()}
        slow_ids = [by_key[idem]["id"] for _, _, idem in slow]
        accepted = load.accepted()
        # Every job in the database was answered 202 to its client, and every
        # request that failed on the wire left no job behind: nothing accepted failed.
        assert set(rows) == set(accepted) | set(slow_ids)
        failed = [o for o in outcomes if o.status != 202]
        assert all(o.error for o in failed), [o for o in failed if not o.error][:3]
        assert not [o for o in failed if o.idempotency_key in by_key]
        assert [o for o in failed if o.started > signalled_at], "nobody was refused"

        ids = accepted + slow_ids
        assert len(ids) >= MIN_JOBS
        done, waited = wait_for_jobs(db, ids, timeout=90, what="after the API stopped")
        assert {row["status"] for row in done.values()} == {"succeeded"}, status_counts(db)
        after_signal = [o for o in outcomes if o.status == 202 and o.ended > signalled_at]
        print(
            f"\nAPI SIGTERM: slow clients accepted in {accepted_s:.2f}s; "
            f"exited 0 after {took_s:.1f}s (graceful timeout {GRACEFUL_S:.0f}s); "
            f"{SLOW_CLIENTS} requests mid-body at the signal got complete 202s "
            f"{BODY_DELAY_S}s later; {len(after_signal)} other 202s completed after the "
            f"signal; {len(failed)} later requests failed on the wire "
            f"{dict(Counter((o.error or '').split(':')[0] for o in failed))}, none accepted; "
            f"{len(ids)} jobs accepted, all succeeded ({waited:.1f}s after the API exited)"
        )
