from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from conveyor.api.jobs.cursor import decode_cursor, encode_cursor
from conveyor.api.problems import Problem
from conveyor.common import keys


def test_generated_key_round_trips_and_stores_only_a_hash() -> None:
    new = keys.generate_key()
    lookup, secret = keys.split_key(new.plaintext) or ("", "")
    assert lookup == new.lookup
    assert secret not in new.secret_hash and new.plaintext not in new.secret_hash
    assert keys.secret_matches(secret, new.secret_hash)
    assert not keys.secret_matches(secret + "x", new.secret_hash)


@pytest.mark.parametrize("token", ["", "cvk", "cvk_", "cvk__x", "abc_def_ghi", "cvk_lookup_"])
def test_malformed_tokens_do_not_split(token: str) -> None:
    assert keys.split_key(token) is None


def test_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = keys.hmac.compare_digest

    def recording(a, b):  # type: ignore[no-untyped-def]
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(keys.hmac, "compare_digest", recording)
    stored = keys.hash_secret("right")
    assert keys.secret_matches("right", stored)
    assert not keys.secret_matches("wrong", stored)
    # Every check, match or not, goes through the constant-time comparison of the hashes.
    assert calls == [(stored, stored), (keys.hash_secret("wrong"), stored)]


def test_cursor_round_trip() -> None:
    when, job_id = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), uuid.uuid4()
    assert decode_cursor(encode_cursor(when, job_id)) == (when, job_id)


@pytest.mark.parametrize("cursor", ["", "%%%", "bm9wZQ", "MjAyNi0wMS0wMnxub3QtYS11dWlk"])
def test_bad_cursor_is_a_400_naming_the_parameter(cursor: str) -> None:
    with pytest.raises(Problem) as info:
        decode_cursor(cursor)
    assert info.value.status == 400 and "cursor" in info.value.detail
