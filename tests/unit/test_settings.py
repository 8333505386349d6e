"""Settings: the URL forms managed services hand out, and one line per bad variable."""

from __future__ import annotations

import pytest

from conveyor.common.settings import Settings, load_settings


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "LOG_LEVEL", "LOG_FORMAT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/0")
    return monkeypatch


@pytest.mark.parametrize(
    ("given", "asyncpg", "psycopg"),
    [
        (
            "postgres://u:p@db:5432/app",
            "postgresql+asyncpg://u:p@db:5432/app",
            "postgresql+psycopg://u:p@db:5432/app",
        ),
        (
            "postgresql://u:p@db/app",
            "postgresql+asyncpg://u:p@db/app",
            "postgresql+psycopg://u:p@db/app",
        ),
        (
            "postgresql://u:p@db/app?sslmode=require",
            "postgresql+asyncpg://u:p@db/app?ssl=require",
            "postgresql+psycopg://u:p@db/app?sslmode=require",
        ),
    ],
)
def test_plain_database_urls_get_our_drivers(env, given: str, asyncpg: str, psycopg: str) -> None:  # type: ignore[no-untyped-def]
    env.setenv("DATABASE_URL", given)
    settings = Settings()  # type: ignore[call-arg]
    assert settings.async_database_url == asyncpg
    assert settings.sync_database_url == psycopg


def test_secrets_are_not_in_repr(env) -> None:  # type: ignore[no-untyped-def]
    env.setenv("DATABASE_URL", "postgresql://u:hunter2@db/app")
    settings = Settings()  # type: ignore[call-arg]
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())


def test_celery_broker_url_overrides_redis_url(env) -> None:  # type: ignore[no-untyped-def]
    env.setenv("DATABASE_URL", "postgresql://db/app")
    assert Settings().broker_url == "redis://cache:6379/0"  # type: ignore[call-arg]
    env.setenv("CELERY_BROKER_URL", "redis://other:6379/2")
    assert Settings().broker_url == "redis://other:6379/2"  # type: ignore[call-arg]


def test_log_settings_are_case_insensitive(env) -> None:  # type: ignore[no-untyped-def]
    env.setenv("DATABASE_URL", "postgresql://db/app")
    env.setenv("LOG_LEVEL", "debug")
    env.setenv("LOG_FORMAT", "CONSOLE")
    settings = Settings()  # type: ignore[call-arg]
    assert (settings.log_level, settings.log_format) == ("DEBUG", "console")


def test_load_settings_prints_one_line_per_bad_variable(env, capsys) -> None:  # type: ignore[no-untyped-def]
    env.setenv("DATABASE_URL", "mysql://u:secretpw@db/app")
    env.setenv("LOG_FORMAT", "xml")
    with pytest.raises(SystemExit) as exit_info:
        load_settings(Settings)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("config error: DATABASE_URL scheme must be one of")
    assert lines[1].startswith("config error: LOG_FORMAT ")
    assert "secretpw" not in "".join(lines)


@pytest.mark.parametrize(
    ("days", "seconds"), [(None, 7 * 86400.0), ("0.5", 43200.0), ("0.001", 86.4), ("0", None)]
)
def test_job_retention_days_take_fractions_and_0_keeps_jobs(env, days, seconds) -> None:  # type: ignore[no-untyped-def]
    from conveyor.worker.settings import SchedulerSettings

    env.setenv("DATABASE_URL", "postgresql://u:p@db/app")
    env.delenv("JOB_RETENTION_DAYS", raising=False)
    if days is not None:
        env.setenv("JOB_RETENTION_DAYS", days)
    assert SchedulerSettings().job_retention_seconds == pytest.approx(seconds)
