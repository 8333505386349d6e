"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from conveyor.api import health, stats
from conveyor.api.dashboard.router import router as dashboard_router
from conveyor.api.jobs.batch import router as batch_router
from conveyor.api.jobs.router import router as jobs_router
from conveyor.api.metrics import make_api_metrics
from conveyor.api.middleware import EdgeMiddleware
from conveyor.api.problems import install_problem_handlers
from conveyor.api.queue_age import refresh_queue_age
from conveyor.api.settings import ApiSettings
from conveyor.api.state import AppState
from conveyor.api.tracing import HeadSampledFastAPI, instrument_app, telemetry_config
from conveyor.common.queues import all_queues

DESCRIPTION = """
Submit jobs, read (or wait for) their results, list them, and cancel the ones
still queued or running.

Authenticate with `Authorization: Bearer <api key>`; create a key with
`python scripts/create_api_key.py --tenant NAME`. Errors are RFC 9457 problem
details (`application/problem+json`).
"""


def create_app(settings: ApiSettings) -> FastAPI:
    metrics = make_api_metrics(settings.broker_url, all_queues(settings.queue_routes))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await AppState.build(settings, metrics)
        app.state.conveyor = state
        state.job_waiters.start()
        queue_age = asyncio.create_task(refresh_queue_age(state.engine, metrics.queue_age))
        # `python -m conveyor.api` sets `app.state.stopping` to its server's exit flag.
        stopping = getattr(app.state, "stopping", lambda: False)
        stop_waits = asyncio.create_task(state.job_waiters.stop_waiting_when(stopping))
        try:
            yield
        finally:
            for task in (queue_age, stop_waits):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await state.close()

    app = HeadSampledFastAPI(
        title="Conveyor",
        version=settings.app_version,
        description=DESCRIPTION,
        lifespan=lifespan,
        telemetry=telemetry_config(),
    )
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(batch_router)
    app.include_router(jobs_router)
    app.include_router(stats.router)
    app.include_router(dashboard_router)
    app.add_middleware(
        EdgeMiddleware,
        metrics=metrics,
        router_app=app.router,
        max_body_bytes=settings.max_body_bytes,
    )
    instrument_app(app)  # trace context around the whole stack when spans are not exported
    return app
