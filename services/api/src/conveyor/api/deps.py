"""Dependencies, as `Annotated` aliases the routes declare."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from conveyor.api.auth import authenticate, authenticate_writer
from conveyor.api.principal import Principal
from conveyor.api.session import SessionDep, StateDep, get_session, get_state

PrincipalDep = Annotated[Principal, Depends(authenticate)]
# Submits: the key may come from a one-minute cache, re-checked by the INSERT.
WriterDep = Annotated[Principal, Depends(authenticate_writer)]

__all__ = ["PrincipalDep", "SessionDep", "StateDep", "WriterDep", "get_session", "get_state"]
