"""Migrations: applied only by scripts/migrate.py, safely concurrent, no drift."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from conveyor.common.migrate import head_revision
from conveyor.common.models import Base
from conveyor.common.settings import _with_driver
from tests.support.engines import Engines
from tests.support.processes import PROCFILE, base_env, run_admin


def test_two_concurrent_migrations_both_succeed_and_apply_once(engines: Engines) -> None:
    url = engines.database(f"migrate_{uuid.uuid4().hex[:8]}")
    env = base_env(DATABASE_URL=url, REDIS_URL=engines.redis(0))
    with ThreadPoolExecutor(3) as pool:
        runs = list(pool.map(lambda _: run_admin(PROCFILE["release"], env), range(3)))
    for done in runs:
        assert done.returncode == 0, done.stdout + done.stderr
    outputs = "".join(done.stdout for done in runs)
    assert outputs.count('"schema migrated"') == 1
    assert outputs.count('"schema already at head"') == 2
    with psycopg.connect(url) as conn:
        versions = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        assert versions == [(head_revision(),)]
        tables = {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert {"tenants", "api_keys", "jobs", "alembic_version"} <= tables


def test_autogenerate_finds_no_drift(engines: Engines) -> None:
    url = engines.database(f"drift_{uuid.uuid4().hex[:8]}")
    done = run_admin(PROCFILE["release"], base_env(DATABASE_URL=url, REDIS_URL=engines.redis(0)))
    assert done.returncode == 0, done.stderr
    engine = create_engine(_with_driver(url, "psycopg"))
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    engine.dispose()
    assert diff == []


def test_constraint_names_follow_the_convention(engines: Engines) -> None:
    url = engines.database(f"names_{uuid.uuid4().hex[:8]}")
    run_admin(PROCFILE["release"], base_env(DATABASE_URL=url, REDIS_URL=engines.redis(0)))
    with psycopg.connect(url) as conn:
        names = {
            r[0]
            for r in conn.execute(
                "SELECT conname FROM pg_constraint JOIN pg_namespace n ON n.oid = connamespace "
                "WHERE nspname = 'public'"
            )
        }
    assert {
        "pk_jobs",
        "fk_jobs_tenant_id_tenants",
        "ck_jobs_status_valid",
        "uq_api_keys_lookup",
    } <= names
