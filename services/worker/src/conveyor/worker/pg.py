"""The connections that run `attempts`' statements: plain psycopg, autocommit.

A job's claim and outcome are one statement each, on the hot path of every
job. SQLAlchemy's pool checkout and execution context cost about as much CPU
as the rest of the job, and bought nothing for fixed SQL text, so this module
keeps one autocommit psycopg connection per thread (the job's and the lease
keeper's), opened on first use in the process that uses it: nothing is shared
across a fork. psycopg prepares each statement on the server after a few
uses. When this process exports traces, each statement gets a CLIENT span with
the attributes the SQLAlchemy instrumentation gives everyone else's SQL.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import psycopg
from psycopg import pq
from sqlalchemy.engine import make_url

from conveyor.common.sql_spans import sql_span

_IDLE = pq.TransactionStatus.IDLE


class Connections:
    def __init__(self, database_url: str, connect_timeout_s: int = 5) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self.conninfo = url.render_as_string(hide_password=False)
        self.connect_timeout_s = connect_timeout_s
        self.local = threading.local()
        self.span_attributes: dict[str, Any] = {
            "db.system": "postgresql",
            "db.name": url.database or "",
            "net.peer.name": url.host or "",
            "net.peer.port": url.port or 5432,
        }
        self.described: dict[str, tuple[str, dict[str, Any]]] = {}

    def execute(self, sql: str, params: dict[str, Any]) -> tuple[int, tuple[Any, ...] | None]:
        """Run one statement as its own transaction: (rowcount, first row or None).

        A connection found broken (Postgres restarted since its last use) is
        dropped and the statement is sent once more on a new one. A statement
        whose reply was lost may have run: `attempts` says why that is safe.
        """
        for retry in (False, True):
            conn = self.connection()
            try:
                with self.span(sql):
                    cursor = conn.execute(sql, params)
                    row = cursor.fetchone() if cursor.description else None
                    return cursor.rowcount, row
            except BaseException as exc:
                if not conn.closed and conn.pgconn.transaction_status == _IDLE:
                    raise  # the statement failed; the connection is fine
                # Broken, or cut off mid-statement (Celery's soft time limit
                # raises wherever the job is): never reuse it.
                conn.close()
                self.local.conn = None
                if retry or not isinstance(exc, psycopg.OperationalError):
                    raise
        raise AssertionError("unreachable")

    def open(self) -> None:
        """Connect this thread now rather than at its first statement. A pool
        child calls it at start, so its first job does not wait for Postgres to
        start a backend; if Postgres is down, the first statement connects.
        libpq's shortest timeout (2 s) keeps it inside Celery's 4 s for a new
        child to report itself up."""
        with contextlib.suppress(psycopg.Error):
            self.connection(connect_timeout_s=2)

    def connection(self, connect_timeout_s: int | None = None) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self.local, "conn", None)
        if conn is None or conn.closed:
            conn = psycopg.connect(
                self.conninfo,
                autocommit=True,
                connect_timeout=connect_timeout_s or self.connect_timeout_s,
            )
            self.local.conn = conn
        return conn

    def span(self, sql: str) -> Any:
        described = self.described.get(sql)
        if described is None:  # the statements are fixed text: describe each once
            name = f"{sql.split(None, 1)[0]} {self.span_attributes['db.name']}"
            described = self.described[sql] = (
                name,
                {**self.span_attributes, "db.statement": sql},
            )
        return sql_span("conveyor.worker.pg", *described)
