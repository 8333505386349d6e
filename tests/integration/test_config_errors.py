"""Bad configuration stops every process before any work: one line per bad
variable, naming it, and a non-zero exit."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.processes import PROCFILE, ROOT, base_env

COMMANDS = {
    "web": PROCFILE["web"],
    "worker": PROCFILE["worker"],
    "scheduler": PROCFILE["scheduler"],
    "release": PROCFILE["release"],
    "create_api_key": "python scripts/create_api_key.py --tenant x",
}
GOOD_REDIS = "redis://127.0.0.1:1/0"  # never reached: config fails first


def run(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command.split(), cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize("process", sorted(COMMANDS))
@pytest.mark.parametrize(
    ("database_url", "expected"),
    [
        (None, "config error: DATABASE_URL is required but not set"),
        ("mysql://u:p@host/db", "config error: DATABASE_URL scheme must be one of"),
        ("postgresql://", "config error: DATABASE_URL has no host"),
    ],
)
def test_bad_database_url_exits_nonzero_with_one_line(process, database_url, expected) -> None:  # type: ignore[no-untyped-def]
    env = base_env(REDIS_URL=GOOD_REDIS)
    env.pop("DATABASE_URL", None)
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    done = run(COMMANDS[process], env)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(expected), lines
    assert done.stdout == ""  # nothing started, nothing logged


def test_password_in_a_bad_url_is_not_echoed() -> None:
    env = base_env(DATABASE_URL="mysql://user:hunter2-secret@db/x", REDIS_URL=GOOD_REDIS)
    done = run(COMMANDS["web"], env)
    assert done.returncode != 0
    assert "hunter2-secret" not in done.stderr + done.stdout


def test_every_bad_variable_gets_its_own_line() -> None:
    env = base_env(DATABASE_URL="nope", REDIS_URL="http://x", PORT="99999", LOG_LEVEL="LOUD")
    done = run(COMMANDS["web"], env)
    assert done.returncode != 0
    lines = sorted(done.stderr.strip().splitlines())
    assert [line.split()[2] for line in lines] == ["DATABASE_URL", "LOG_LEVEL", "PORT", "REDIS_URL"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("-1", "greater than or equal to 0"), ("a week", "valid number")],
)
def test_a_bad_retention_stops_the_scheduler_with_one_line(value: str, expected: str) -> None:
    env = base_env(
        DATABASE_URL="postgresql://u:p@host/db", REDIS_URL=GOOD_REDIS, JOB_RETENTION_DAYS=value
    )
    done = run(COMMANDS["scheduler"], env)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("config error: JOB_RETENTION_DAYS "), line
    assert expected in line, line
