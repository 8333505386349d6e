"""Serves the dashboard page. No build step and no CDN: it must work offline."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["dashboard"])


@cache
def _page() -> str:
    return (files("conveyor.api.dashboard") / "dashboard.html").read_text(encoding="utf-8")


@router.get("/dashboard", response_class=HTMLResponse, summary="Live dashboard (HTML)")
async def dashboard() -> HTMLResponse:
    # The page holds no data: it asks for an API key and reads /v1/stats with it.
    return HTMLResponse(_page(), headers={"Cache-Control": "no-store"})
