"""The job's columns are listed once, by the table (models.Job): JobOut's fields
and the API's raw SQL follow it, and statuses in SQL come from JobStatus."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from conveyor.api.jobs import submit
from conveyor.api.jobs.schemas import JobOut
from conveyor.common.models import JOB_INTERNAL_COLUMNS, JOB_PUBLIC_COLUMNS, Job, JobStatus
from conveyor.worker import attempts

EXAMPLE: dict[str, Any] = JobOut.model_config["json_schema_extra"]["examples"][0]  # type: ignore[index]


def _returned(sql: str) -> list[str]:
    """The column list a statement returns (RETURNING, else its SELECT)."""
    if "RETURNING" in sql:
        columns = sql.rsplit("RETURNING", 1)[1]
    else:
        columns = sql.split("SELECT", 1)[1].split("FROM", 1)[0]
    return [column.strip() for column in columns.split(",")]


def test_public_and_internal_columns_partition_the_table() -> None:
    table = [c.name for c in Job.__table__.columns]
    assert set(JOB_PUBLIC_COLUMNS) | JOB_INTERNAL_COLUMNS == set(table)
    assert not set(JOB_PUBLIC_COLUMNS) & JOB_INTERNAL_COLUMNS
    assert [c for c in table if c in JOB_PUBLIC_COLUMNS] == list(JOB_PUBLIC_COLUMNS)


def test_job_out_has_one_field_per_public_column_nullable_as_the_column() -> None:
    assert tuple(JobOut.model_fields) == JOB_PUBLIC_COLUMNS
    for name in JOB_PUBLIC_COLUMNS:
        nullable = Job.__table__.columns[name].nullable
        accepts_none = True
        try:
            JobOut.model_validate({**EXAMPLE, name: None})
        except ValidationError:
            accepts_none = False
        assert accepts_none == nullable, name
    assert JobOut.model_validate(EXAMPLE).status is JobStatus.SUCCEEDED
    with pytest.raises(ValidationError):
        JobOut.model_validate({**EXAMPLE, "kind": "no-such-kind"})


def test_the_apis_sql_returns_exactly_the_public_columns() -> None:
    for sql in (submit._INSERT, submit._INSERT_MANY):
        assert _returned(sql) == list(JOB_PUBLIC_COLUMNS)
    assert _returned(submit._BY_KEY) == [*JOB_PUBLIC_COLUMNS, "request_hash"]


def test_statuses_in_fixed_sql_are_jobstatus_values() -> None:
    statements = [
        submit._INSERT,
        submit._INSERT_MANY,
        attempts._CLAIM,
        attempts._RENEW,
        attempts._SUCCEED,
        attempts._RETRY,
        attempts._FAIL,
    ]
    values = {status.value for status in JobStatus}
    for sql in statements:
        for literal in re.findall(r"'([a-z]+)'", sql):
            assert literal in values, (literal, sql)
    assert "status = 'running'" in attempts._CLAIM and "status || '' = 'queued'" in attempts._CLAIM
