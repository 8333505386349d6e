"""The database schema: tenants, their API keys, and their jobs."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from conveyor.common.job_ids import new_job_id

# A naming convention keeps Alembic's constraint names stable and reviewable.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class JobStatus(enum.StrEnum):
    # Waiting for its `run_at`; the scheduler queues it when due (not terminal).
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


def sql_statuses(*statuses: JobStatus) -> str:
    """`'queued', 'running'`: JobStatus values as SQL literals, for fixed SQL text."""
    return ", ".join(f"'{status.value}'" for status in statuses)


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ApiKey(Base):
    """An API key, stored only as the SHA-256 of its secret part.

    Keys are 256-bit random secrets, so a fast hash is enough: nobody can
    brute-force them, and lookup stays one index probe per request.
    """

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    # Public lookup id, the middle part of `cvk_<lookup>_<secret>`.
    lookup: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(f"status IN ({sql_statuses(*JobStatus)})", name="status_valid"),
        CheckConstraint("attempts >= 0 AND attempts <= max_attempts", name="attempts_in_range"),
        # Listing: newest first within a tenant, with a stable tiebreak for cursors.
        Index("ix_jobs_tenant_created", "tenant_id", "created_at", "id"),
        # Listing by status: rare rows (failed, queued) among millions.
        Index("ix_jobs_tenant_status_created", "tenant_id", "status", "created_at", "id"),
        # Throughput, latency and recent failures for /v1/stats and the dashboard.
        Index("ix_jobs_tenant_finished", "tenant_id", "finished_at"),
        # The reconciler scans only live jobs.
        Index(
            "ix_jobs_live_status_updated",
            "status",
            "updated_at",
            postgresql_where=text(
                f"status IN ({sql_statuses(JobStatus.QUEUED, JobStatus.RUNNING)})"
            ),
        ),
        # The oldest runnable queued job (the API's queue age metric): min() of
        # this expression over queued rows is the index's first entry.
        Index(
            "ix_jobs_queued_runnable_at",
            text("coalesce(run_after, created_at)"),
            postgresql_where=text(f"status = {sql_statuses(JobStatus.QUEUED)}"),
        ),
        # The scheduler's two scans: delayed jobs falling due, and finished
        # jobs past their retention (finished_at is set only on terminal jobs).
        Index(
            "ix_jobs_scheduled_run_at",
            "run_at",
            postgresql_where=text(f"status = {sql_statuses(JobStatus.SCHEDULED)}"),
        ),
        Index(
            "ix_jobs_finished_at",
            "finished_at",
            postgresql_where=text("finished_at IS NOT NULL"),
        ),
        Index(
            "uq_jobs_tenant_idempotency_key",
            "tenant_id",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_job_id)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED.value)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    # Who holds the job while it runs, and until when; see the reconciler.
    worker_id: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Earliest time a retry may be claimed (backoff after a transient failure).
    run_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A delayed job's due time (the request's run_at, or its submit time plus
    # delay_seconds, never earlier than the submit); null for a job run at once.
    run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # One entry per earlier run of the job, appended by POST /v1/jobs/{id}/retry.
    attempt_history: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb")
    )


class JobCount(Base):
    """A tenant's jobs in one status, kept by triggers on `jobs` (migration 0006)
    so /v1/stats reads a few rows instead of counting millions. Sum over shards."""

    __tablename__ = "job_counts"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


# Columns only the services use: tenancy, the lease, retry timing and the
# idempotency bookkeeping. Every other column is the job a client sees.
JOB_INTERNAL_COLUMNS = frozenset(
    {"tenant_id", "lease_expires_at", "run_after", "idempotency_key", "request_hash"}
)
# What the API returns for a job, in table order: its JobOut and the columns
# its SQL returns both come from here.
JOB_PUBLIC_COLUMNS: tuple[str, ...] = tuple(
    column.name for column in Job.__table__.columns if column.name not in JOB_INTERNAL_COLUMNS
)
