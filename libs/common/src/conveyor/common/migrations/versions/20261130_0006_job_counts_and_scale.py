"""jobs at scale: per-tenant status counters kept on write, a status listing
index, and storage settings for a table of millions of rows

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One statement-level trigger per write kind: a statement of any size adds one
# upsert, its deltas grouped and sorted (tenant, status, shard) so that
# concurrent statements lock counter rows in the same order. The shard, the
# job id's last byte mod 64, spreads concurrent writers of one tenant over 64
# rows per status: two transactions wait on each other only when their jobs
# share a shard, and never for long, whoever the backends are.
_FUNCTION = """
CREATE FUNCTION jobs_count_deltas() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO job_counts AS c (tenant_id, status, shard, n)
    SELECT tenant_id, status, get_byte(uuid_send(id), 15) % 64, count(*)
    FROM new_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (tenant_id, status, shard) DO UPDATE SET n = c.n + excluded.n;
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO job_counts AS c (tenant_id, status, shard, n)
    SELECT tenant_id, status, get_byte(uuid_send(id), 15) % 64, sum(d) FROM (
      SELECT tenant_id, status, id, 1 AS d FROM new_rows
      UNION ALL SELECT tenant_id, status, id, -1 FROM old_rows
    ) AS deltas GROUP BY 1, 2, 3 HAVING sum(d) <> 0 ORDER BY 1, 2, 3
    ON CONFLICT (tenant_id, status, shard) DO UPDATE SET n = c.n + excluded.n;
  ELSE
    INSERT INTO job_counts AS c (tenant_id, status, shard, n)
    SELECT tenant_id, status, get_byte(uuid_send(id), 15) % 64, -count(*)
    FROM old_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (tenant_id, status, shard) DO UPDATE SET n = c.n + excluded.n;
  END IF;
  RETURN NULL;
END $$
"""
_TRIGGERS = {
    "jobs_count_insert": "AFTER INSERT ON jobs REFERENCING NEW TABLE AS new_rows",
    "jobs_count_update": (
        "AFTER UPDATE ON jobs REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
    ),
    "jobs_count_delete": "AFTER DELETE ON jobs REFERENCING OLD TABLE AS old_rows",
}


def upgrade() -> None:
    op.create_table(
        "job_counts",
        sa.Column("tenant_id", UUID(as_uuid=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_job_counts_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "status", "shard", name=op.f("pk_job_counts")),
    )
    op.execute(_FUNCTION)
    # The triggers first: CREATE TRIGGER locks out writers until this migration
    # commits, so the backfill below sees every job and none is counted twice.
    for name, spec in _TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {name} {spec} FOR EACH STATEMENT EXECUTE FUNCTION jobs_count_deltas()"
        )
    op.execute(
        "INSERT INTO job_counts (tenant_id, status, shard, n) "
        "SELECT tenant_id, status, 0, count(*) FROM jobs GROUP BY 1, 2"
    )
    # Listing by status (failed, queued: rare rows among millions) without
    # walking the whole tenant.
    op.create_index(
        "ix_jobs_tenant_status_created", "jobs", ["tenant_id", "status", "created_at", "id"]
    )
    # A job's row is updated three or four times (claim, lease renewals,
    # finish): room on its page lets the renewals, which touch no indexed
    # column, be HOT updates. Vacuum at 2 % dead rows, not the default 20 %
    # (a million dead rows at 5M), so index-only scans keep a fresh visibility
    # map and bloat stays bounded.
    op.execute(
        "ALTER TABLE jobs SET (fillfactor = 90, autovacuum_vacuum_scale_factor = 0.02, "
        "autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02)"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE jobs RESET (fillfactor, autovacuum_vacuum_scale_factor, "
        "autovacuum_vacuum_insert_scale_factor, autovacuum_analyze_scale_factor)"
    )
    op.drop_index("ix_jobs_tenant_status_created", table_name="jobs")
    for name in _TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON jobs")
    op.execute("DROP FUNCTION jobs_count_deltas()")
    op.drop_table("job_counts")
