"""delayed jobs (the scheduled status, run_at), retry history, retention index

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 17:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')"
_NEW = "status IN ('scheduled', 'queued', 'running', 'succeeded', 'failed', 'cancelled')"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_jobs_status_valid"), "jobs", type_="check")
    op.create_check_constraint(op.f("ck_jobs_status_valid"), "jobs", sa.text(_NEW))
    op.add_column("jobs", sa.Column("run_at", sa.DateTime(timezone=True), nullable=True))
    # A constant default: Postgres adds the column without rewriting the table.
    op.add_column(
        "jobs",
        sa.Column(
            "attempt_history",
            postgresql.JSONB(),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )
    # Partial, so each stays as small as what it serves: jobs waiting for
    # their time, and finished jobs (the retention scan).
    op.create_index(
        "ix_jobs_scheduled_run_at",
        "jobs",
        ["run_at"],
        postgresql_where=sa.text("status = 'scheduled'"),
    )
    op.create_index(
        "ix_jobs_finished_at",
        "jobs",
        ["finished_at"],
        postgresql_where=sa.text("finished_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_finished_at", table_name="jobs")
    op.drop_index("ix_jobs_scheduled_run_at", table_name="jobs")
    op.drop_column("jobs", "attempt_history")
    op.drop_column("jobs", "run_at")
    # Delayed jobs have no place in the old schema: they run at once.
    op.execute("UPDATE jobs SET status = 'queued' WHERE status = 'scheduled'")
    op.drop_constraint(op.f("ck_jobs_status_valid"), "jobs", type_="check")
    op.create_check_constraint(op.f("ck_jobs_status_valid"), "jobs", sa.text(_OLD))
