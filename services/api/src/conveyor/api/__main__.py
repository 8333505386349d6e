"""`python -m conveyor.api`: one uvicorn process bound to $PORT."""

from __future__ import annotations

import signal

import uvicorn

from conveyor.api.app import create_app
from conveyor.api.settings import ApiSettings
from conveyor.common.gc_tuning import freeze_startup_objects
from conveyor.common.logging import configure_logging
from conveyor.common.settings import load_settings
from conveyor.common.telemetry import configure_tracing


def main() -> None:
    settings = load_settings(ApiSettings)
    configure_logging(settings.log_level, settings.log_format)
    configure_tracing("conveyor-api")
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host="0.0.0.0",  # noqa: S104 - a container's port is reached from outside it
        port=settings.port,
        log_config=None,  # our handlers render uvicorn's logs as JSON
        access_log=False,  # middleware.EdgeMiddleware logs each request, with its ids
        timeout_graceful_shutdown=int(settings.graceful_timeout_seconds),
        proxy_headers=True,
        forwarded_allow_ips="*",
        server_header=False,
    )
    # Uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown; with a
    # Python handler in place that re-raise is a no-op, and we exit 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    server = uvicorn.Server(config)
    # Requests waiting on ?wait= answer at once when a stop begins, instead of
    # holding the graceful shutdown for up to their 30 s.
    app.state.stopping = lambda: server.should_exit
    freeze_startup_objects()
    server.run()


if __name__ == "__main__":
    main()
