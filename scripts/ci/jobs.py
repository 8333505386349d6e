"""Submit a burst of jobs to a running Conveyor, and wait until every one succeeded.

Used by scripts/ci/cluster-e2e.sh against a port-forwarded API; stdlib only.

    python scripts/ci/jobs.py submit --count 40 --kind hash --ids ids.txt
    python scripts/ci/jobs.py wait --ids ids.txt --timeout 300

Needs CONVEYOR_URL and CONVEYOR_API_KEY. `submit` appends the new job ids to the
file; `wait` exits 1 unless every listed job reached `succeeded` in time (a job
that failed, was cancelled or was never found is reported by id).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

PARAMS: dict[str, dict[str, Any]] = {
    "hash": {"data": "ci burst", "iterations": 20_000},
    # Long enough to be running while `helm upgrade` replaces the worker pods.
    "sleep": {"ms": 4_000},
}
FINAL = {"succeeded", "failed", "cancelled"}


def call(method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(
        os.environ["CONVEYOR_URL"].rstrip("/") + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Authorization": "Bearer " + os.environ["CONVEYOR_API_KEY"],
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, Any] = json.load(response)
        return result


def submit(count: int, kind: str, ids_file: Path) -> None:
    ids = [
        call("POST", "/v1/jobs", {"kind": kind, "params": PARAMS[kind]})["id"] for _ in range(count)
    ]
    with ids_file.open("a") as out:
        out.writelines(f"{job_id}\n" for job_id in ids)
    print(f"submitted {count} {kind} jobs")


def wait(ids_file: Path, timeout: float) -> int:
    pending = {line.strip() for line in ids_file.read_text().splitlines() if line.strip()}
    total = len(pending)
    statuses: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for job_id in sorted(pending):
            try:
                statuses[job_id] = call("GET", f"/v1/jobs/{job_id}")["status"]
            except (urllib.error.URLError, TimeoutError) as exc:
                # A port-forward or API pod being replaced: try again next round.
                statuses[job_id] = f"unreachable ({exc})"
            if statuses[job_id] in FINAL:
                pending.discard(job_id)
        if pending:
            time.sleep(2)
    bad = {job_id: s for job_id, s in statuses.items() if s != "succeeded"}
    print(f"{total - len(bad)}/{total} jobs succeeded")
    for job_id, status in sorted(bad.items()):
        print(f"  {job_id}: {status}", file=sys.stderr)
    return 1 if bad or total == 0 else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("submit")
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--kind", choices=sorted(PARAMS), default="hash")
    s.add_argument("--ids", type=Path, required=True)
    w = sub.add_parser("wait")
    w.add_argument("--ids", type=Path, required=True)
    w.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    if args.command == "submit":
        submit(args.count, args.kind, args.ids)
    else:
        raise SystemExit(wait(args.ids, args.timeout))


if __name__ == "__main__":
    main()
