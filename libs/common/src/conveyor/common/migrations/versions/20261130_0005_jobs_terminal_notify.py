"""notify `conveyor_job_terminal` when a job becomes terminal, for GET ?wait=

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 17:45:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A trigger, not a NOTIFY in each writer: every path into a terminal state (the
# worker's outcome, the reconciler, a cancel, anything added later) notifies,
# and in the writing transaction, so the notice is sent only if it commits.
# The payload is `<job id>:<status>` (docs/design.md, "Waiting for a job").
_FUNCTION = """\
CREATE FUNCTION conveyor_notify_job_terminal() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('conveyor_job_terminal', NEW.id::text || ':' || NEW.status);
    RETURN NULL;
END
$$"""

_TRIGGER = """\
CREATE TRIGGER jobs_notify_terminal
AFTER UPDATE OF status ON jobs
FOR EACH ROW
WHEN (NEW.status IN ('succeeded', 'failed', 'cancelled')
      AND OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION conveyor_notify_job_terminal()"""


def upgrade() -> None:
    op.execute(_FUNCTION)
    op.execute(_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS jobs_notify_terminal ON jobs")
    op.execute("DROP FUNCTION IF EXISTS conveyor_notify_job_terminal()")
