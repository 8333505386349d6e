"""Load N finished jobs for a tenant: `make seed N=5000000 [TENANT=dev]`.

For trying and benchmarking Conveyor with a table of millions of jobs. Set-based
SQL only (INSERT ... SELECT over generate_series, in chunks of a few hundred
thousand rows, one transaction each): no rows cross the network. The mix is
realistic: about 1 % failed, 0.1 % cancelled, the rest succeeded; timestamps
spread over the last DAYS days, oldest first, ending a minute ago so live
traffic has the stats windows to itself. Against `make up`'s database unless
DATABASE_URL is set; creates the tenant if needed.
"""

from __future__ import annotations

import argparse
import os
import time

import psycopg

# make up's embedded Postgres (scripts/run_stack.py), when DATABASE_URL is unset.
DEFAULT_URL = "postgresql://postgres@127.0.0.1:54329/conveyor"
CHUNK = 250_000

# Row i of `total`: created at an even step through the window; h is a cheap,
# deterministic hash of i that picks the status, kind and durations.
_INSERT = """
INSERT INTO jobs (id, tenant_id, kind, params, status, result, error, attempts,
                  max_attempts, created_at, updated_at, started_at, finished_at)
SELECT gen_random_uuid(), %(tenant)s, k.kind, k.params, s.status,
       CASE WHEN s.status = 'succeeded' THEN k.result END,
       CASE WHEN s.status = 'failed' THEN 'ValueError: seeded failure' END,
       CASE WHEN s.status = 'cancelled' THEN 0 ELSE 1 + (s.status = 'failed')::int * 2 END,
       3, t.created, t.finished, t.started, t.finished
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) AS g(i)
CROSS JOIN LATERAL (SELECT (i * 2654435761) %% 100000 AS h) AS x
CROSS JOIN LATERAL (
  SELECT CASE WHEN h %% 100 = 0 THEN 'failed'
              WHEN h %% 1000 = 7 THEN 'cancelled' ELSE 'succeeded' END AS status
) AS s
CROSS JOIN LATERAL (
  SELECT CASE h %% 3
    WHEN 0 THEN 'sleep' WHEN 1 THEN 'hash' ELSE 'primes' END AS kind,
  CASE h %% 3
    WHEN 0 THEN jsonb_build_object('ms', h %% 500)
    WHEN 1 THEN jsonb_build_object('data', 'seed-' || i, 'iterations', 1000)
    ELSE jsonb_build_object('limit', 1000 + h %% 9000) END AS params,
  CASE h %% 3
    WHEN 0 THEN jsonb_build_object('slept_ms', h %% 500)
    WHEN 1 THEN jsonb_build_object('digest', md5(i::text))
    ELSE jsonb_build_object('count', 168 + h %% 1000) END AS result
) AS k
CROSS JOIN LATERAL (
  SELECT c AS created,
         c + make_interval(secs => (h %% 50) / 1000.0) AS started,
         c + make_interval(secs => (h %% 50 + 5 + h %% 500) / 1000.0) AS finished
  FROM (SELECT now() - interval '1 minute'
               - make_interval(secs => %(span_s)s * (1 - i::float8 / %(total)s)) AS c) AS c0
) AS t
"""


def tenant_id(conn: psycopg.Connection, name: str) -> str:
    conn.execute(
        "INSERT INTO tenants (id, name) VALUES (gen_random_uuid(), %s) "
        "ON CONFLICT (name) DO NOTHING",
        (name,),
    )
    row = conn.execute("SELECT id FROM tenants WHERE name = %s", (name,)).fetchone()
    assert row is not None
    return str(row[0])


def seed(url: str, tenant: str, total: int, days: float = 30, vacuum: bool = True) -> float:
    """Inserts `total` finished jobs for `tenant`; returns the seconds it took."""
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        tid = tenant_id(conn, tenant)
        for lo in range(0, total, CHUNK):
            hi = min(lo + CHUNK, total)
            params = {"tenant": tid, "lo": lo, "hi": hi, "total": total, "span_s": days * 86400}
            conn.execute(_INSERT, params)
            print(f"seed: {hi}/{total} jobs ({time.monotonic() - started:.0f}s)", flush=True)
        if vacuum:
            # Sets the visibility map (index-only scans) and the planner's statistics
            # now, rather than whenever autovacuum gets to it.
            conn.execute("VACUUM (ANALYZE) jobs")
    return time.monotonic() - started


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=_positive, required=True, help="how many jobs")
    parser.add_argument("--tenant", default="dev", help="tenant name (default: dev)")
    parser.add_argument("--days", type=float, default=30, help="time span of created_at")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL") or DEFAULT_URL
    try:
        seconds = seed(url, args.tenant, args.jobs, args.days)
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split())  # one line, whatever libpq said
        raise SystemExit(
            f"seed: cannot reach the database ({reason}); is `make up` running?"
        ) from exc
    print(f"seed: {args.jobs} jobs for tenant {args.tenant!r} in {seconds:.1f}s", flush=True)


if __name__ == "__main__":
    main()
