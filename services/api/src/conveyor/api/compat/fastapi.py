"""FastAPI: an unsampled request skips FastAPI's telemetry instead of being excluded by it.

Upstream behaviour: with `FastAPI(telemetry=...)` and a tracer provider set,
`FastAPI.__call__` works on every request before it asks the config's public
`exclude` hook: it checks the providers again, walks the whole middleware stack
looking for contrib's OpenTelemetryMiddleware, and then, for an excluded
request, attaches an OpenTelemetry context of its own around the app. The API
takes its head-sampling decision first (conveyor.api.tracing) and excludes
every unsampled request, nine in ten by default; that per-request work then
cost each of them about 0.09 ms of the API's CPU, more than half of what
tracing at the default sampling cost a submit (`make bench`, `tracing`). No
upstream issue was found.

A request whose ASGI scope already holds the key "fastapi.telemetry" goes
straight to Starlette: FastAPI sets it itself (to None, for an excluded
request) so that an application mounted inside does not trace the request a
second time. This entry sets it, to None, on an unsampled request's scope
before FastAPI sees it.

Verified against fastapi 0.165. Outside that range the key is not set (warning
logged): unsampled requests go through FastAPI's telemetry, whose `exclude`
hook excludes them. Trace ids and sampling are the same; only the cost is.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from conveyor.common.compat import supported

ENTRY = "fastapi.skip_telemetry_when_unsampled"
VERIFIED = ("fastapi", "0.165", "0.166")
# FastAPI's own marker for a request its telemetry has seen (None: excluded).
TELEMETRY_SCOPE_KEY = "fastapi.telemetry"


def can_skip_telemetry() -> bool:
    """Whether `skip_telemetry` is verified for the installed FastAPI (ask once, at start-up)."""
    return supported(ENTRY, *VERIFIED)


def skip_telemetry(scope: MutableMapping[str, Any]) -> None:
    """FastAPI passes this request to Starlette without its telemetry."""
    scope[TELEMETRY_SCOPE_KEY] = None
