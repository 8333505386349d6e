"""The API's asyncpg pool, for the hot paths: authentication, submits and job reads.

A submit through SQLAlchemy's async ORM cost about four times the CPU of the
same INSERT sent with asyncpg (measured in `make bench`: ~230 vs ~1,700 submits/s
on 2 cores), so the routes every client calls on every job use asyncpg directly;
so do the reads clients poll and page through (jobs/reads.py: one job, a page,
`?wait=`). Cancels, retries and the stats stay on SQLAlchemy (see deps.SessionDep).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from conveyor.api.settings import ApiSettings
from conveyor.common.sql_spans import sql_span, statement_attributes


def asyncpg_dsn(settings: ApiSettings) -> tuple[str, int | None]:
    """The URL for asyncpg, and its prepared-statement cache size if the URL sets one.

    asyncpg reads libpq's URL and query parameters (sslmode included) as they
    are, but only under the plain scheme; it would send any other parameter to
    the server as a setting. `prepared_statement_cache_size` is SQLAlchemy's
    name for the cache PgBouncer's transaction pooling needs off
    (docs/operate/capacity.md), so both pools honour it.
    """
    parts = urlsplit(settings.database_url.get_secret_value())
    query = dict(parse_qsl(parts.query))
    cache_size = query.pop("prepared_statement_cache_size", None)
    dsn = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(query), parts.fragment))
    return dsn, int(cache_size) if cache_size is not None else None


async def _setup_codecs(conn: asyncpg.Connection) -> None:
    for jsonish in ("json", "jsonb"):
        await conn.set_type_codec(
            jsonish, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


P = ParamSpec("P")
R = TypeVar("R")


def _remembers_failure(
    method: Callable[P, Awaitable[R]],
) -> Callable[P, Awaitable[R]]:
    @functools.wraps(method)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except BaseException:
            args[0].failed = True  # type: ignore[attr-defined]
            raise

    return run


class TrackedConnection(asyncpg.Connection):  # type: ignore[misc]
    """A connection that remembers a statement which failed or was cut off.

    Public API, not a compat entry: `create_pool(connection_class=...)` is
    documented to take a subclass of `asyncpg.Connection`, and this one only
    wraps four public methods and adds one attribute.

    asyncpg's default reset on release is a round trip (unlisten, unlock,
    RESET ALL) for session state this API never creates: about a tenth of a
    submit's cost. It is still what a connection needs after an error or a
    cancelled statement (a database outage, a client gone mid-request), when
    it may hold an aborted transaction or a half-read reply; the full reset
    then either cleans it or fails, and the pool drops it.
    """

    __slots__ = ("failed",)

    execute = _remembers_failure(asyncpg.Connection.execute)
    fetch = _remembers_failure(asyncpg.Connection.fetch)
    fetchrow = _remembers_failure(asyncpg.Connection.fetchrow)
    fetchval = _remembers_failure(asyncpg.Connection.fetchval)


async def _reset_after_failure(conn: asyncpg.Connection) -> None:
    # The pool has already rolled back an open transaction before it calls this.
    if getattr(conn, "failed", False):
        conn.failed = False
        await conn.reset()


def create_pg_pool(settings: ApiSettings) -> asyncpg.Pool:
    """Connects lazily (min_size 0): the API boots, and /readyz says 503, while
    Postgres is down. `await pool` (done at startup) opens no connection."""
    dsn, cache_size = asyncpg_dsn(settings)
    extra = {} if cache_size is None else {"statement_cache_size": cache_size}
    return asyncpg.create_pool(
        dsn,
        min_size=0,
        max_size=settings.db_pool_size,
        max_inactive_connection_lifetime=300,
        init=_setup_codecs,
        connection_class=TrackedConnection,
        reset=_reset_after_failure,
        timeout=5,  # connect
        command_timeout=30,
        **extra,
    )


def traced(name: str, statement: str) -> Any:
    """A CLIENT span (when spans are exported) around one asyncpg statement."""
    return sql_span("conveyor.api.sql", name, statement_attributes(statement))
