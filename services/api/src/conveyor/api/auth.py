"""Bearer API keys: `Authorization: Bearer cvk_<lookup>_<secret>`."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from conveyor.api.pg import traced
from conveyor.api.principal import Principal
from conveyor.api.problems import Problem
from conveyor.api.session import StateDep
from conveyor.api.state import AppState
from conveyor.common.keys import secret_matches, split_key

bearer = HTTPBearer(auto_error=False, description="An API key from scripts/create_api_key.py")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_BY_LOOKUP = "SELECT id, tenant_id, secret_hash, revoked_at FROM api_keys WHERE lookup = $1"


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, headers=_CHALLENGE)


def _parse(credentials: HTTPAuthorizationCredentials | None) -> tuple[str, str]:
    if credentials is None:
        raise _unauthorized("Missing `Authorization: Bearer <api key>` header.")
    parts = split_key(credentials.credentials)
    if parts is None:
        raise _unauthorized("The API key is malformed.")
    return parts


async def _verify(state: AppState, lookup: str, secret: str) -> tuple[Principal, str]:
    """The key's principal and stored hash, read now. Raises 401."""
    with traced("SELECT api_keys", _BY_LOOKUP):
        row = await state.pg.fetchrow(_BY_LOOKUP, lookup)
    # Compare even when the lookup missed, so both paths cost the same.
    stored = row["secret_hash"] if row else "0" * 64
    if not secret_matches(secret, stored) or row is None or row["revoked_at"] is not None:
        raise _unauthorized("The API key is invalid or revoked.")
    return Principal(tenant_id=row["tenant_id"], key_id=row["id"], lookup=lookup), stored


async def authenticate(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """Reads the key on every request, so a revoked key stops working at once."""
    lookup, secret = _parse(credentials)
    principal, _ = await _verify(state, lookup, secret)
    await state.rate_limiter.check(principal.key_id, time.monotonic())
    return principal


async def authenticate_writer(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """For routes whose INSERT re-checks the key in the same statement (submits):
    a key verified in the last minute is trusted up to that INSERT, which stores
    nothing if it was revoked meanwhile (the route answers 401 and forgets it).
    Saves the key read, a third of a submit's database work."""
    lookup, secret = _parse(credentials)
    now = time.monotonic()
    cached = state.verified_keys.get(lookup, now)
    if cached is not None and secret_matches(secret, cached[1]):
        principal = cached[0]
    else:
        principal, stored = await _verify(state, lookup, secret)
        state.verified_keys.put(lookup, principal, stored, now)
    await state.rate_limiter.check(principal.key_id, now)
    return principal


def revoked_meanwhile(state: AppState, principal: Principal) -> Problem:
    state.verified_keys.drop(principal.lookup)
    return _unauthorized("The API key is invalid or revoked.")
