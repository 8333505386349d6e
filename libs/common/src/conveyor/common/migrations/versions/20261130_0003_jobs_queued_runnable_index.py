"""index queued jobs by when they became runnable, for the queue age metric

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 15:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Partial: only queued rows, so it stays small however many jobs finished.
    op.create_index(
        "ix_jobs_queued_runnable_at",
        "jobs",
        [sa.text("coalesce(run_after, created_at)")],
        unique=False,
        postgresql_where=sa.text("status = 'queued'"),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_queued_runnable_at", table_name="jobs")
