"""The worker's own psycopg connections, without a database."""

from __future__ import annotations

import psycopg
import pytest

from conveyor.worker.pg import Connections
from tests.support.engines import free_port


def test_the_driver_url_becomes_a_libpq_url_with_its_query() -> None:
    db = Connections("postgresql+psycopg://user:s3cret@db.example:6543/jobs?sslmode=require")
    assert db.conninfo == "postgresql://user:s3cret@db.example:6543/jobs?sslmode=require"
    assert db.span_attributes == {
        "db.system": "postgresql",
        "db.name": "jobs",
        "net.peer.name": "db.example",
        "net.peer.port": 6543,
    }


def test_open_leaves_an_unreachable_database_to_the_first_statement() -> None:
    db = Connections(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing")
    db.open()  # a pool child starting while Postgres is down must still start
    with pytest.raises(psycopg.OperationalError):
        db.execute("SELECT 1", {})
