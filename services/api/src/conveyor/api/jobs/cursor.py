"""Opaque keyset cursors: (created_at, id) of the last row on a page."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

from conveyor.api.problems import Problem


def encode_cursor(created_at: datetime, job_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{job_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, job_id = base64.urlsafe_b64decode(padded).decode().split("|")
        parsed = datetime.fromisoformat(created)
        if parsed.tzinfo is None:
            raise ValueError("naive timestamp")
        return parsed, uuid.UUID(job_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(
            400,
            "Bad Request",
            "cursor: not a cursor this API returned",
            errors=[{"field": "cursor", "message": "not a cursor this API returned"}],
        ) from exc
