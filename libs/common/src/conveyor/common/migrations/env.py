"""Alembic environment. `scripts/migrate.py` hands us a connection that holds
the advisory lock; `alembic` on the command line builds one from DATABASE_URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from conveyor.common.db import make_sync_engine
from conveyor.common.models import Base
from conveyor.common.settings import Settings, load_settings

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = make_sync_engine(load_settings(Settings))
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
