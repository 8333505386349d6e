"""Settings read from the environment (and `.env` for local use only).

Processes call `load_settings(SomeSettings)`: on bad configuration it prints one
line per bad variable, naming it, and exits non-zero before any work is done.
"""

from __future__ import annotations

import sys
from typing import Literal, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from conveyor.common.queues import kind_routes, parse_kind_queues

_POSTGRES_SCHEMES = {"postgres", "postgresql", "postgresql+asyncpg", "postgresql+psycopg"}
_REDIS_SCHEMES = {"redis", "rediss", "unix"}


def _check_url(value: SecretStr, schemes: set[str], example: str) -> SecretStr:
    raw = value.get_secret_value().strip()
    # Never echo the value back: it may hold a password.
    try:
        parts = urlsplit(raw)
    except ValueError as exc:
        raise ValueError(f"is not a URL (expected {example})") from exc
    if parts.scheme not in schemes:
        raise ValueError(f"scheme must be one of {', '.join(sorted(schemes))} (expected {example})")
    if parts.scheme != "unix" and not (parts.hostname or "host=" in parts.query):
        raise ValueError(f"has no host (expected {example})")
    return SecretStr(raw)


def _with_driver(url: str, driver: str) -> str:
    """Turn the plain URL a managed service hands out into one for our driver."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if driver == "asyncpg" and "sslmode" in query:
        # asyncpg spells libpq's sslmode as `ssl`.
        query["ssl"] = query.pop("sslmode")
    scheme = f"postgresql+{driver}"
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


class Settings(BaseSettings):
    """What every Conveyor process needs: its backing services and its logging."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    database_url: SecretStr = Field(description="PostgreSQL URL, e.g. postgresql://u:p@host/db")
    redis_url: SecretStr = Field(description="Redis URL, the broker, e.g. redis://host:6379/0")
    celery_broker_url: SecretStr | None = Field(
        default=None, description="Overrides REDIS_URL as broker"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    db_pool_size: int = Field(default=20, ge=1, le=200)
    job_lease_seconds: int = Field(default=30, ge=2, le=60)
    default_max_attempts: int = Field(default=3, ge=1, le=20)
    retry_backoff_seconds: float = Field(default=1.0, ge=0, le=300)
    retry_backoff_max_seconds: float = Field(default=60.0, ge=0, le=3600)
    # Overrides of the kind -> queue routing, `kind=queue,...` (queues.py).
    kind_queues: str = ""

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_format(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("kind_queues")
    @classmethod
    def _check_kind_queues(cls, value: str) -> str:
        parse_kind_queues(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr) -> SecretStr:
        return _check_url(value, _POSTGRES_SCHEMES, "postgresql://user:password@host:5432/db")

    @field_validator("redis_url", "celery_broker_url")
    @classmethod
    def _check_redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        return _check_url(value, _REDIS_SCHEMES, "redis://host:6379/0")

    @property
    def async_database_url(self) -> str:
        return _with_driver(self.database_url.get_secret_value(), "asyncpg")

    @property
    def sync_database_url(self) -> str:
        return _with_driver(self.database_url.get_secret_value(), "psycopg")

    @property
    def queue_routes(self) -> dict[str, str]:
        """Each kind's queue: the registry's, with KIND_QUEUES applied."""
        return kind_routes(parse_kind_queues(self.kind_queues))

    @property
    def broker_url(self) -> str:
        chosen = self.celery_broker_url or self.redis_url
        return chosen.get_secret_value()


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def _env_name(settings_cls: type[BaseSettings], loc: tuple[int | str, ...]) -> str:
    prefix = str(settings_cls.model_config.get("env_prefix") or "")
    return (prefix + str(loc[0])).upper() if loc else "CONFIG"


def load_settings(settings_cls: type[SettingsT]) -> SettingsT:
    """Build settings or stop the process with one line per bad variable."""
    try:
        return settings_cls()
    except ValidationError as exc:
        for error in exc.errors(include_input=False, include_url=False):
            name = _env_name(settings_cls, error["loc"])
            message = "is required but not set" if error["type"] == "missing" else error["msg"]
            message = message.removeprefix("Value error, ")
            print(f"config error: {name} {message}", file=sys.stderr)
        sys.stderr.flush()
        raise SystemExit(2) from None
