"""The API's one pure-ASGI middleware: request ids, the body limit, RED metrics
and the access log, in a single layer.

They were four layers; each wrapped `send` and cost a coroutine per request,
which showed up in profiles of the submit path. Order of effects:

1. `X-Request-ID` is taken from the client (up to 128 chars) or minted, bound
   to the log context, and echoed on the response.
2. Bodies over the limit get 413, whether declared by Content-Length or streamed.
3. After the response: `http_requests_total` and `http_request_duration_seconds`
   by route template, and one `conveyor.api.access` event (uvicorn's access log
   is off), still inside the request's context, so it carries `request_id`,
   `trace_id` and `span_id` like every other line.
"""

from __future__ import annotations

import json
import time
import uuid

import structlog
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.api.metrics import ApiMetrics
from conveyor.api.problems import PROBLEM_JSON
from conveyor.common.logging import get_logger

access_log = get_logger("conveyor.api.access")

# Probes and scrapes that succeed are logged at DEBUG: at INFO they would drown
# the lines people read. Failures stay at INFO.
_QUIET_PATHS = frozenset({"/livez", "/readyz", "/metrics"})


class EdgeMiddleware:
    def __init__(
        self, app: ASGIApp, metrics: ApiMetrics, router_app: ASGIApp, max_body_bytes: int
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.router_app = router_app
        self.max_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        headers = dict(scope["headers"])
        supplied = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = supplied if 0 < len(supplied) <= 128 else uuid.uuid4().hex
        status = 500
        received = 0
        rejected = False

        async def respond(message: Message) -> None:
            nonlocal status
            if rejected:
                return  # the 413 went out already; the app's answer is dropped
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        async def limited_receive() -> Message:
            nonlocal received, rejected
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes and not rejected:
                    # Answer 413 now; to the app the client looks gone.
                    await self.reject(scope, respond)
                    rejected = True
                    return {"type": "http.disconnect"}
            return message

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                declared = headers.get(b"content-length")
                if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                    await self.reject(scope, respond)
                else:
                    await self.app(scope, limited_receive, respond)
            finally:
                self.observe(scope, status, time.perf_counter() - start)

    def observe(self, scope: Scope, status: int, elapsed: float) -> None:
        route = _route_template(self.router_app, scope)
        method = scope["method"]
        self.metrics.requests.labels(method, route, str(status)).inc()
        self.metrics.latency.labels(method, route).observe(elapsed)
        path = scope.get("path", "")
        log = access_log.debug if path in _QUIET_PATHS and status < 400 else access_log.info
        client = scope.get("client")
        log(
            f"{method} {path} {status}",
            method=method,
            path=path,
            route=route,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
            client=client[0] if client else None,
            http_version=scope.get("http_version"),
        )

    async def reject(self, scope: Scope, send: Send) -> None:
        body = json.dumps(
            {
                "type": "about:blank",
                "title": "Content Too Large",
                "status": 413,
                "detail": f"The request body exceeds {self.max_bytes} bytes.",
                "instance": scope.get("path", ""),
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _route_template(app: ASGIApp, scope: Scope) -> str:
    # Templates, not raw paths, keep the label set small: /v1/jobs/{job_id}.
    # The router records the route it matched in the scope (Starlette >= 0.33);
    # FastAPI's included routers hide their routes from a scan of app.routes.
    matched = getattr(scope.get("route"), "path", None)
    if matched:
        return str(matched)
    for route in getattr(app, "routes", []):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"
