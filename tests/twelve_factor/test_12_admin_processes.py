"""Factor XII, Admin processes: run admin/management tasks as one-off processes.

- migrate, create_api_key and revoke_api_key run as one-offs in the app's own
  environment (the web process's env, as Stack.env gives it) with the app's own
  code (they import conveyor.common and load its Settings) — and a key minted
  by the one-off works at once against the running API, and revoking it stops it;
- they are idempotent: migrate twice -> "schema already at head"; revoke twice -> 0;
- they are safe concurrently: 3 migrates at once all exit 0 and migrate once;
  5 create_api_key at once for one new tenant all exit 0, one tenant row, 5 keys.
Related: tests/integration/test_migrations.py (2 concurrent migrations, no
drift), tests/integration/test_security.py.
"""

from __future__ import annotations

import ast
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg

from tests.conftest import fresh_redis_url
from tests.support.engines import ROOT, Engines
from tests.support.processes import PROCFILE, Stack, run_admin

SCRIPTS = ("migrate.py", "create_api_key.py", "revoke_api_key.py")


def messages(stdout: str) -> list[str]:
    """The migration's own outcome lines (Alembic logs its steps too)."""
    out = []
    for line in stdout.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("logger") == "conveyor.migrate":
                out.append(event["message"])
    return out


def app_code_problems(source: str, name: str) -> list[str]:
    """A one-off must use the app's code and its configuration loader."""
    tree = ast.parse(source)
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    calls = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    problems = []
    if "conveyor.common.settings" not in imported or "load_settings" not in calls:
        problems.append(f"{name} does not load the app's Settings")
    if "os.environ" in source or "getenv" in source:
        problems.append(f"{name} reads the environment on its own")
    if not any(m.startswith("conveyor.common") for m in imported - {"conveyor.common.settings"}):
        problems.append(f"{name} does not use the app's code")
    return problems


def test_one_offs_use_the_apps_code_and_config() -> None:
    assert PROCFILE["release"] == "python scripts/migrate.py"
    for name in SCRIPTS:
        assert app_code_problems((ROOT / "scripts" / name).read_text(), name) == []
    rogue = "import os, psycopg\npsycopg.connect(os.environ['DB']).execute('ALTER ...')\n"
    assert app_code_problems(rogue, "rogue.py") == [
        "rogue.py does not load the app's Settings",
        "rogue.py reads the environment on its own",
        "rogue.py does not use the app's code",
    ]


def test_one_offs_share_the_web_environment_and_are_idempotent(
    engines: Engines, tmp_path: Path
) -> None:
    stack = Stack(
        database_url=engines.database(f"admin_{uuid.uuid4().hex[:8]}"),
        redis_url=fresh_redis_url(engines),
        log_dir=tmp_path,
    )
    env = stack.env()  # exactly the environment the web process gets
    first = run_admin(PROCFILE["release"], env)
    second = run_admin(PROCFILE["release"], env)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert messages(first.stdout) == ["schema migrated"]
    assert messages(second.stdout) == ["schema already at head"]
    try:
        stack.start_api()
        key = stack.create_key("one-off")
        with stack.client(key) as client:
            assert client.get("/v1/jobs").status_code == 200
            for _ in range(2):
                revoked = run_admin(f"python scripts/revoke_api_key.py {key}", env)
                assert revoked.returncode == 0, revoked.stdout + revoked.stderr
            assert client.get("/v1/jobs").status_code == 401
        unknown = run_admin("python scripts/revoke_api_key.py cvk_nosuchkey", env)
        assert unknown.returncode == 1
        # Without the app's configuration, a one-off stops like the app does.
        bare = run_admin(PROCFILE["release"], {"PATH": env["PATH"]})
        assert bare.returncode == 2
        assert "config error: DATABASE_URL is required but not set" in bare.stderr
    finally:
        stack.stop()


def test_one_offs_are_safe_to_run_concurrently(engines: Engines, tmp_path: Path) -> None:
    database_url = engines.database(f"admin_{uuid.uuid4().hex[:8]}")
    stack = Stack(database_url=database_url, redis_url=fresh_redis_url(engines), log_dir=tmp_path)
    env = stack.env()
    with ThreadPoolExecutor(5) as pool:
        migrations = list(pool.map(lambda _: run_admin(PROCFILE["release"], env), range(3)))
    for done in migrations:
        assert done.returncode == 0, done.stdout + done.stderr
    outcomes = sorted(m for done in migrations for m in messages(done.stdout))
    assert outcomes == ["schema already at head", "schema already at head", "schema migrated"]

    tenant = f"race-{uuid.uuid4().hex[:6]}"
    command = f"python scripts/create_api_key.py --tenant {tenant}"
    with ThreadPoolExecutor(5) as pool:
        created = list(pool.map(lambda _: run_admin(command, env), range(5)))
    for done in created:
        assert done.returncode == 0, done.stdout + done.stderr
    keys = {done.stdout.strip().splitlines()[-1] for done in created}
    assert len(keys) == 5
    with psycopg.connect(database_url) as conn:
        tenants = conn.execute("SELECT id FROM tenants WHERE name = %s", (tenant,)).fetchall()
        assert len(tenants) == 1
        [(n_keys,)] = conn.execute(
            "SELECT count(*) FROM api_keys WHERE tenant_id = %s", (tenants[0][0],)
        ).fetchall()
        assert n_keys == 5
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
