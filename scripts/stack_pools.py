"""`make up WORKERS=...`: how many worker processes, in which pools.

`WORKERS=2` is one pool of two processes that serves every queue, as before
pools. `WORKERS=cpu:2,io:1` is a pool per entry, `queues:count`, whose
processes get WORKER_QUEUES set to the entry's queues (several joined by `+`:
`cpu:2,io+default:1`).
"""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.common.queues import all_queues, check_queue_name, kind_routes, parse_kind_queues


@dataclass(frozen=True)
class Pool:
    program: str  # supervisord's program name: `worker` or `worker-<queues>`
    queues: tuple[str, ...]  # empty: every queue
    count: int


def _count(raw: str, entry: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"WORKERS entry {entry!r}: the count must be a positive integer")
    return int(raw)


def parse_workers(raw: str, kind_queues: str = "") -> list[Pool]:
    """Pools from WORKERS; ValueError says what is wrong, in one line."""
    raw = raw.strip()
    if raw.isdigit() or ":" not in raw:
        return [Pool("worker", (), _count(raw, raw))]
    known = all_queues(kind_routes(parse_kind_queues(kind_queues)))
    pools: list[Pool] = []
    for entry in (e.strip() for e in raw.split(",") if e.strip()):
        names, sep, count = entry.rpartition(":")
        if not sep or not names:
            raise ValueError(f"WORKERS entry {entry!r} is not queues:count (e.g. cpu:2,io:1)")
        queues = tuple(sorted({check_queue_name(q.strip()) for q in names.split("+")}))
        unknown = sorted(set(queues) - set(known))
        if unknown:
            raise ValueError(
                f"WORKERS entry {entry!r} names {', '.join(unknown)}, which no kind is "
                f"routed to (queues: {', '.join(known)})"
            )
        pool = Pool(f"worker-{'-'.join(queues)}", queues, _count(count, entry))
        if any(p.program == pool.program for p in pools):
            raise ValueError(f"WORKERS names the pool {names!r} twice")
        pools.append(pool)
    return pools


def unserved(pools: list[Pool], kind_queues: str = "") -> list[str]:
    """Queues no pool serves: their jobs wait until a worker for them starts."""
    if any(not pool.queues for pool in pools):
        return []
    served = {q for pool in pools for q in pool.queues}
    return [q for q in all_queues(kind_routes(parse_kind_queues(kind_queues))) if q not in served]
