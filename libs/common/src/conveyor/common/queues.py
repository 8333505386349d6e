"""Queues: every job kind is routed to one, and every worker serves some.

A queue `cpu` is the Celery queue, and so the Redis list, `conveyor.jobs.cpu`.
A kind's queue is its registry entry's `queue` (kinds.py), unless KIND_QUEUES
says otherwise; a worker serves the queues in WORKER_QUEUES, every queue when
that is empty. Senders route in run_job_message.job_queue, the one place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from conveyor.common.kinds import KINDS

QUEUE_PREFIX = "conveyor.jobs."
# The one list every kind shared before pools: a worker serving `default` also
# drains it, so messages an older API sent during an upgrade still run.
LEGACY_LIST = "conveyor.jobs"
DEFAULT_QUEUE = "default"
_NAME = re.compile(r"^[a-z0-9]([a-z0-9_-]{0,30}[a-z0-9])?$")
_NAME_RULE = "lowercase letters, digits, '-' and '_', at most 32 characters"


def list_name(queue: str) -> str:
    """The Redis list (Celery queue) that holds `queue`'s messages."""
    return f"{QUEUE_PREFIX}{queue}"


def check_queue_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"queue name {name!r} is invalid ({_NAME_RULE})")
    return name


def parse_kind_queues(raw: str) -> dict[str, str]:
    """`sleep=io,hash=cpu` -> {"sleep": "io", "hash": "cpu"}; ValueError names the bad part."""
    routes: dict[str, str] = {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        kind, sep, queue = (s.strip() for s in part.partition("="))
        if not sep or not kind or not queue:
            raise ValueError(f"entry {part!r} is not kind=queue (e.g. sleep=io,hash=cpu)")
        if kind in routes:
            raise ValueError(f"names kind {kind!r} twice")
        routes[kind] = check_queue_name(queue)
    return routes


def parse_queue_list(raw: str) -> tuple[str, ...]:
    """`cpu, io` -> ("cpu", "io"), sorted and without repeats."""
    names = {check_queue_name(p.strip()) for p in raw.split(",") if p.strip()}
    return tuple(sorted(names))


def kind_routes(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every registered kind's queue, with `overrides` (KIND_QUEUES) applied.

    A kind named only in the overrides is kept: a process that does not know a
    plugin kind (the scheduler) still routes it where the API does.
    """
    return {name: spec.queue for name, spec in KINDS.items()} | dict(overrides or {})


def all_queues(routes: Mapping[str, str]) -> tuple[str, ...]:
    """Every queue some kind goes to, plus `default` (where unknown kinds go)."""
    return tuple(sorted({*routes.values(), DEFAULT_QUEUE}))


def worker_lists(queues: Iterable[str]) -> list[str]:
    """The Redis lists a worker serving `queues` consumes."""
    served = tuple(queues)
    lists = [list_name(q) for q in served]
    if DEFAULT_QUEUE in served:
        lists.append(LEGACY_LIST)
    return lists


def pool_name(queues: Iterable[str]) -> str:
    """A pool is known by the queues its workers serve: `cpu`, `default,io`."""
    return ",".join(sorted(queues))
