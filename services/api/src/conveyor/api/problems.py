"""RFC 9457 problem details: the one error shape for every response."""

from __future__ import annotations

from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from conveyor.common.kinds import KINDS
from conveyor.common.logging import get_logger

PROBLEM_JSON = "application/problem+json"
log = get_logger(__name__)

# The body of every error response, as the OpenAPI document declares it.
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
_PROBLEM_DESCRIPTIONS = {
    400: "Malformed JSON, or a cursor this API did not return",
    401: "Missing, malformed or revoked API key",
    404: "No such job for this tenant",
    409: "Conflict with the job's current state",
    413: "Body over the size limit",
    422: "Invalid request; `errors` names each bad field",
    429: "Rate limit exceeded; see Retry-After",
    503: "Database unavailable; see Retry-After",
}


def problem_responses(
    *codes: int, descriptions: dict[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, all problem documents.

    Declaring 422 here also replaces FastAPI's default (an `application/json`
    HTTPValidationError), which is not what the API sends.
    """
    chosen = {**_PROBLEM_DESCRIPTIONS, **(descriptions or {})}
    return {
        code: {
            "description": chosen[code],
            "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}},
            **({"headers": _RETRY_AFTER} if code in (429, 503) else {}),
        }
        for code in codes
    }


class Problem(Exception):
    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.headers = headers or {}
        self.extra = extra


def problem_response(
    request: Request,
    status: int,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    body["instance"] = request.url.path
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _field_path(loc: tuple[int | str, ...]) -> str:
    # ("body", "sleep", "params", "ms") -> "params.ms": drop the source and the union tag.
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    if len(parts) > 1 and parts[0] in KINDS:
        parts = parts[1:]
    return ".".join(parts) or "body"


def _validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    errors = []
    for err in exc.errors():
        field = _field_path(tuple(err["loc"]))
        if err["type"] in {"union_tag_invalid", "union_tag_not_found"}:
            field = "kind"
        # A validator's own ValueError reads as its message, without pydantic's prefix.
        errors.append({"field": field, "message": err["msg"].removeprefix("Value error, ")})
    return errors


# SQLSTATE classes that mean "the server cannot serve us right now", whatever
# exception class the driver maps them to: 08 connection exception, 53
# insufficient resources, 57 operator intervention ("the database system is
# shutting down" / "is starting up" / "terminating connection"). asyncpg gives
# each SQLSTATE its own class (ConnectionDoesNotExistError is 08003,
# CannotConnectNowError 57P03...), and SQLAlchemy's DBAPIError carries the
# driver's code on `orig`.
_UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "53", "57"})

# asyncpg's client-side errors: a pool or connection that is closed or closing
# (InterfaceError), or a connection an outage cut off mid-statement, whose
# protocol state is broken (the pool drops it). DataError is an InterfaceError
# too, but it means an argument that would not encode: our bug, a 500.
_ASYNCPG_CLIENT_DOWN: tuple[type[Exception], ...] = (
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)
_ASYNCPG_CLIENT_BUGS: tuple[type[Exception], ...] = (
    asyncpg.DataError,
    asyncpg.exceptions.OutdatedSchemaCacheError,
)


def _sqlstate_unavailable(sqlstate: object) -> bool:
    return str(sqlstate or "")[:2] in _UNAVAILABLE_SQLSTATE_CLASSES


def _is_database_unavailable(exc: Exception) -> bool:
    """By exception class (and the SQLSTATE each class stands for), never by message."""
    if isinstance(exc, asyncpg.PostgresError):  # the asyncpg pool's errors (pg.py)
        return _sqlstate_unavailable(exc.sqlstate)
    if isinstance(exc, _ASYNCPG_CLIENT_DOWN):
        return not isinstance(exc, _ASYNCPG_CLIENT_BUGS)
    if isinstance(exc, sa_exc.DBAPIError):
        return (
            exc.connection_invalidated
            or isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
            or _sqlstate_unavailable(getattr(exc.orig, "sqlstate", None))
        )
    return isinstance(exc, sa_exc.TimeoutError | OSError)


# Errors that mean "a backing service is down": 503 with Retry-After, never 500.
_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    sa_exc.DBAPIError,
    sa_exc.TimeoutError,
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(
            request, exc.status, exc.title, exc.detail, exc.headers, **exc.extra
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not Found", 405: "Method Not Allowed", 401: "Unauthorized"}.get(
            exc.status_code, "Error"
        )
        return problem_response(
            request, exc.status_code, title, str(exc.detail), dict(exc.headers or {})
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        if any(e["message"].startswith("JSON decode error") for e in errors) or any(
            err["type"] == "json_invalid" for err in exc.errors()
        ):
            return problem_response(
                request, 400, "Malformed JSON", "The request body is not valid JSON."
            )
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem_response(request, 422, "Invalid request", detail, errors=errors)

    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        if not _is_database_unavailable(exc):
            log.error("unhandled error", exc_info=exc)
            return problem_response(request, 500, "Internal Server Error", "Unexpected error.")
        log.warning("database unavailable", error=type(exc).__name__)
        return problem_response(
            request,
            503,
            "Service Unavailable",
            "The database is unavailable; retry shortly.",
            {"Retry-After": "2"},
        )

    for error_type in _UNAVAILABLE_ERRORS:
        app.add_exception_handler(error_type, _unavailable)

    @app.exception_handler(asyncpg.UntranslatableCharacterError)
    async def _unstorable(request: Request, exc: Exception) -> JSONResponse:
        # JSON allows "\u0000" in a string, Postgres' jsonb does not: bad input, not our fault.
        return problem_response(
            request,
            422,
            "Invalid request",
            "A string in the request holds the character \\u0000, which cannot be stored.",
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc)
        return problem_response(request, 500, "Internal Server Error", "Unexpected error.")
