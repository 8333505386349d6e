"""Who is calling, and the keys recently verified against the database."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    tenant_id: uuid.UUID
    key_id: uuid.UUID
    lookup: str


class VerifiedKeys:
    """Keys read from the database in the last `ttl_s`, by lookup id: the
    principal and the stored hash (never the secret). Bounded; oldest out first."""

    def __init__(self, ttl_s: float = 60.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.entries: OrderedDict[str, tuple[Principal, str, float]] = OrderedDict()

    def get(self, lookup: str, now: float) -> tuple[Principal, str] | None:
        entry = self.entries.get(lookup)
        if entry is None or now - entry[2] > self.ttl_s:
            return None
        return entry[0], entry[1]

    def put(self, lookup: str, principal: Principal, stored_hash: str, now: float) -> None:
        self.entries[lookup] = (principal, stored_hash, now)
        self.entries.move_to_end(lookup)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)

    def drop(self, lookup: str) -> None:
        self.entries.pop(lookup, None)
