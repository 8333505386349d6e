"""Bearer API keys: `Authorization: Bearer cvk_<lookup>_<secret>`."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from conveyor.api.problems import Problem
from conveyor.api.session import StateDep
from conveyor.api.sql_tracing import traced
from conveyor.common.keys import secret_matches, split_key

bearer = HTTPBearer(auto_error=False, description="An API key from scripts/create_api_key.py")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_BY_LOOKUP = "SELECT id, tenant_id, secret_hash, revoked_at FROM api_keys WHERE lookup = $1"


@dataclass(frozen=True)
class Principal:
    tenant_id: uuid.UUID
    key_id: uuid.UUID


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, headers=_CHALLENGE)


async def authenticate(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None:
        raise _unauthorized("Missing `Authorization: Bearer <api key>` header.")
    parts = split_key(credentials.credentials)
    if parts is None:
        raise _unauthorized("The API key is malformed.")
    lookup, secret = parts
    # Read on every request (one indexed row on the asyncpg pool, see pg.py),
    # so a revoked key stops working at once.
    with traced("SELECT api_keys", _BY_LOOKUP):
        row = await state.pg.fetchrow(_BY_LOOKUP, lookup)
    # Compare even when the lookup missed, so both paths cost the same.
    stored = row["secret_hash"] if row else "0" * 64
    if not secret_matches(secret, stored) or row is None or row["revoked_at"] is not None:
        raise _unauthorized("The API key is invalid or revoked.")
    principal = Principal(tenant_id=row["tenant_id"], key_id=row["id"])
    await state.rate_limiter.check(principal.key_id, time.monotonic())
    return principal
