"""Job ids: UUID version 7 (RFC 9562), time-ordered.

A job's row is written three times within seconds (insert, claim, result),
and neither update is HOT, so each adds an entry to every index, the primary
key's included. Random (version 4) ids put those entries on random leaf pages
of the primary key; at millions of rows that index outgrows shared_buffers
and the writes miss the cache. Time-ordered ids keep the recent jobs' keys on
the few right-most leaves (docs/operate/capacity.md). The id reveals its
creation time to the millisecond, as `created_at` in the response already does.

Python's `uuid.uuid7` arrives in 3.14; until then, this layout:
48 bits of Unix milliseconds, version 7, 74 random bits, variant 10.
"""

from __future__ import annotations

import os
import time
import uuid

_RANDOM_HIGH_BITS = 12  # between the version and the variant
_RANDOM_LOW_BITS = 62  # after the variant


def new_job_id() -> uuid.UUID:
    millis = time.time_ns() // 1_000_000
    random = int.from_bytes(os.urandom(10), "big")  # 80 bits; 74 are used
    high = (random >> _RANDOM_LOW_BITS) & ((1 << _RANDOM_HIGH_BITS) - 1)
    low = random & ((1 << _RANDOM_LOW_BITS) - 1)
    value = (millis & ((1 << 48) - 1)) << 80 | 0x7 << 76 | high << 64 | 0b10 << 62 | low
    return uuid.UUID(int=value)
