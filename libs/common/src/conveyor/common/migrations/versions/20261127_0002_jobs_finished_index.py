"""index jobs by tenant and finish time, for stats and the dashboard

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 12:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_jobs_tenant_finished", "jobs", ["tenant_id", "finished_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_jobs_tenant_finished", table_name="jobs")
