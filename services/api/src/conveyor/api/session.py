"""The request's state and database session, as dependencies.

Kept apart from deps.py so auth.py can use the request's session without an
import cycle; routes import everything from deps.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from conveyor.api.state import AppState


async def get_state(request: Request) -> AppState:
    # async: FastAPI runs a plain `def` dependency on a worker thread.
    return cast(AppState, request.app.state.conveyor)


StateDep = Annotated[AppState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    # One session (one pooled connection) per request, shared by auth and the route.
    async with state.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
