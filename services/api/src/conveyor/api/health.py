"""Probes and build metadata: /livez, /readyz, /version, /metrics."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from conveyor.api.deps import StateDep
from conveyor.api.state import AppState

router = APIRouter(tags=["operations"])


@router.get("/livez", summary="200 while the process runs")
async def livez() -> dict[str, str]:
    return {"status": "ok"}


async def _database_ok(state: AppState) -> bool:
    try:
        async with state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


async def _broker_ok(state: AppState) -> bool:
    try:
        return bool(await state.redis.ping())
    except Exception:
        return False


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    database: bool
    broker: bool


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={
        503: {
            "model": Readiness,
            "description": "Postgres or the broker does not answer; see Retry-After",
        }
    },
    summary="200 while Postgres and the broker answer, else 503",
)
async def readyz(state: StateDep) -> JSONResponse:
    async def bounded(check: asyncio.Future[bool] | object) -> bool:
        try:
            return await asyncio.wait_for(check, timeout=2)  # type: ignore[arg-type]
        except TimeoutError:
            return False

    database, broker = await asyncio.gather(
        bounded(_database_ok(state)), bounded(_broker_ok(state))
    )
    ready = database and broker
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "database": database, "broker": broker},
        status_code=200 if ready else 503,
        headers=None if ready else {"Retry-After": "2"},
    )


@router.get("/version", summary="The version and git revision this build came from")
async def version(state: StateDep) -> dict[str, str]:
    return {"version": state.settings.app_version, "revision": state.settings.git_revision}


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(state: StateDep) -> Response:
    # Off the event loop: collectors may do blocking I/O (the queue depth reads Redis).
    body = await run_in_threadpool(generate_latest, state.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
