"""The baseline for `api_submit`: a bare FastAPI endpoint, no database, no broker."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI


def create_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/jobs", status_code=202)
    async def submit(body: dict[str, Any]) -> dict[str, Any]:
        return {"id": str(uuid.uuid4()), "status": "queued", **body}

    return app
