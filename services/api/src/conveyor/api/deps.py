"""Dependencies, as `Annotated` aliases the routes declare."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from conveyor.api.auth import Principal, authenticate
from conveyor.api.session import SessionDep, StateDep, get_session, get_state

PrincipalDep = Annotated[Principal, Depends(authenticate)]

__all__ = ["PrincipalDep", "SessionDep", "StateDep", "get_session", "get_state"]
