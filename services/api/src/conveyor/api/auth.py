"""Bearer API keys: `Authorization: Bearer cvk_<lookup>_<secret>`."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select

from conveyor.api.problems import Problem
from conveyor.api.session import SessionDep, StateDep
from conveyor.common.keys import secret_matches, split_key
from conveyor.common.models import ApiKey

bearer = HTTPBearer(auto_error=False, description="An API key from scripts/create_api_key.py")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Principal:
    tenant_id: uuid.UUID
    key_id: uuid.UUID


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, headers=_CHALLENGE)


async def authenticate(
    state: StateDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None:
        raise _unauthorized("Missing `Authorization: Bearer <api key>` header.")
    parts = split_key(credentials.credentials)
    if parts is None:
        raise _unauthorized("The API key is malformed.")
    lookup, secret = parts
    row = (
        await session.execute(
            select(ApiKey.id, ApiKey.tenant_id, ApiKey.secret_hash, ApiKey.revoked_at).where(
                ApiKey.lookup == lookup
            )
        )
    ).one_or_none()
    # Compare even when the lookup missed, so both paths cost the same.
    stored = row.secret_hash if row else "0" * 64
    if not secret_matches(secret, stored) or row is None or row.revoked_at is not None:
        raise _unauthorized("The API key is invalid or revoked.")
    principal = Principal(tenant_id=row.tenant_id, key_id=row.id)
    await state.rate_limiter.check(principal.key_id, time.monotonic())
    return principal
