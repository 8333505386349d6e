"""Job ids are UUIDv7 (RFC 9562): time-ordered, so a burst of new jobs writes
the primary key's right-most leaves instead of random ones."""

from __future__ import annotations

import time
import uuid

from conveyor.common.job_ids import new_job_id


def test_a_job_id_is_a_version_7_rfc_uuid_carrying_its_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    job_id = new_job_id()
    after = time.time_ns() // 1_000_000
    assert job_id.version == 7 and job_id.variant == uuid.RFC_4122
    assert before <= job_id.int >> 80 <= after
    assert uuid.UUID(str(job_id)) == job_id


def test_ids_sort_by_creation_time_and_never_collide() -> None:
    earlier = [new_job_id() for _ in range(1000)]
    time.sleep(0.002)
    later = [new_job_id() for _ in range(1000)]
    assert max(earlier) < min(later)  # a later millisecond sorts after, as bytes too
    assert max(e.bytes for e in earlier) < min(x.bytes for x in later)
    assert len(set(earlier + later)) == 2000  # 74 random bits within a millisecond
