"""The API process's settings: the shared ones plus HTTP concerns."""

from __future__ import annotations

from pydantic import Field

from conveyor.common.settings import Settings


class ApiSettings(Settings):
    port: int = Field(default=8000, ge=1, le=65535)
    # Uvicorn waits this long for in-flight requests after SIGTERM; under
    # `docker stop`'s 10 s by default.
    graceful_timeout_seconds: float = Field(default=8, ge=0, le=300)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Requests per minute per API key; 0 turns the limit off.
    rate_limit_per_minute: int = Field(default=0, ge=0)
    idempotency_ttl_hours: float = Field(default=24, gt=0, le=24 * 30)
    # After a failed publish, skip publishing this long (the reconciler catches up).
    publish_backoff_seconds: float = Field(default=2, ge=0, le=60)
    # Build metadata, baked into images as environment by the Dockerfile.
    app_version: str = "0.1.0"
    git_revision: str = "unknown"
