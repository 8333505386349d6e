"""Dependencies, as `Annotated` aliases the routes declare."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from conveyor.api.auth import Principal, authenticate
from conveyor.api.state import AppState


def get_state(request: Request) -> AppState:
    return cast(AppState, request.app.state.conveyor)


StateDep = Annotated[AppState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
PrincipalDep = Annotated[Principal, Depends(authenticate)]
