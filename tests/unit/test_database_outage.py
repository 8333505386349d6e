"""The API tells "database unavailable" (503 + Retry-After) from a bug (500)
by the exception's class, and the SQLSTATE each class stands for, never by
its message: these errors carry messages that say nothing of an outage.
tests/integration/test_fault_database_restart.py restarts a real Postgres."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc

from conveyor.api.problems import _is_database_unavailable

_NO_HINT = "unrelated text"  # nothing like "closed" or "connection"

OUTAGES = [
    asyncpg.exceptions.ConnectionDoesNotExistError(_NO_HINT),  # 08003, lost mid-statement
    asyncpg.exceptions.ConnectionFailureError(_NO_HINT),  # 08006
    asyncpg.exceptions.CannotConnectNowError(_NO_HINT),  # 57P03, starting or shutting down
    asyncpg.exceptions.AdminShutdownError(_NO_HINT),  # 57P01
    asyncpg.exceptions.TooManyConnectionsError(_NO_HINT),  # 53300
    asyncpg.InterfaceError(_NO_HINT),  # pool or connection closed
    asyncpg.exceptions.InternalClientError(_NO_HINT),  # protocol state broken by a cut
    asyncpg.exceptions.ProtocolError(_NO_HINT),
    ConnectionRefusedError(_NO_HINT),
    TimeoutError(_NO_HINT),
    sa_exc.OperationalError("SELECT 1", None, Exception(_NO_HINT)),
    sa_exc.InterfaceError("SELECT 1", None, Exception(_NO_HINT)),
    sa_exc.DBAPIError("SELECT 1", None, Exception(_NO_HINT), connection_invalidated=True),
    sa_exc.TimeoutError(_NO_HINT),  # the pool's checkout timed out
]

BUGS = [
    asyncpg.exceptions.PostgresSyntaxError("connection closed"),  # 42601, whatever it says
    asyncpg.exceptions.UniqueViolationError("closed"),
    asyncpg.DataError("connection is closed"),  # an argument that would not encode
    asyncpg.exceptions.OutdatedSchemaCacheError("closed"),
    sa_exc.DBAPIError("SELECT 1", None, Exception("connection closed")),
    sa_exc.IntegrityError("INSERT", None, Exception("closed")),
    ValueError("connection closed"),
]


@pytest.mark.parametrize("exc", OUTAGES, ids=lambda e: type(e).__name__)
def test_an_outage_is_recognised_by_its_class(exc: Exception) -> None:
    assert _is_database_unavailable(exc)


@pytest.mark.parametrize("exc", BUGS, ids=lambda e: type(e).__name__)
def test_other_errors_are_not_outages_whatever_their_message(exc: Exception) -> None:
    assert not _is_database_unavailable(exc)
