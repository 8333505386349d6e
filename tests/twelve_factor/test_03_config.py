"""Factor III, Config: store config in the environment.

- an AST scan of libs/*/src and services/*/src finds no hard-coded URL with a
  host, no host or IP address, and no password- or secret-looking literal
  (docstrings, and pydantic `description=`/`examples=` texts, are documentation);
- a process boots from the environment alone: the API with only DATABASE_URL,
  REDIS_URL, PORT and PATH set, in a directory without a .env, becomes ready;
- the same code runs with dev and with prod settings, only the environment
  differing: one API with console logs, DEBUG and a small pool, one with JSON
  logs, WARNING and a large pool, both serve.
Related: tests/integration/test_config_errors.py (bad config stops a process
with one line per variable); tests/unit/test_settings.py.
"""

from __future__ import annotations

import ast
import json
import re
import socket
import uuid
from pathlib import Path

import httpx

from tests.conftest import fresh_redis_url
from tests.support.engines import ROOT, Engines, free_port
from tests.support.processes import PROCFILE, run_admin
from tests.twelve_factor.conftest import minimal_env, spawn_in, wait_api

SOURCES = [*ROOT.glob("libs/*/src"), *ROOT.glob("services/*/src")]
URL = re.compile(
    r"\b(?:https?|postgres(?:ql)?(?:\+\w+)?|rediss?|amqps?|mysql|mongodb(?:\+srv)?)://"
    r"(?:[^\s/@'\"]*@)?(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.\-]+)",
    re.IGNORECASE,
)
IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
# Placeholder hosts used only in messages that show the expected shape.
PLACEHOLDER_HOSTS = {"host", "example.com", "example.org"}
# Listening on every interface is not a host (the API binds $PORT on 0.0.0.0).
BIND_ANY = {"0.0.0.0", "::"}
SECRET_NAME = re.compile(r"(passw(or)?d|secret|token|api_?key|private_?key|credential)", re.I)
SECRET_VALUE = re.compile(r"^(cvk_|sk_live_|ghp_|AKIA)[A-Za-z0-9]{8,}|^-----BEGIN .*PRIVATE KEY")
DOC_KEYWORDS = {"description", "examples", "example", "summary", "help", "title"}


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _documentation(tree: ast.AST) -> set[int]:
    """Constants inside docstrings and documentation keywords (description=, examples=)."""
    ids = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg in DOC_KEYWORDS:
            ids |= {id(c) for c in ast.walk(node.value) if isinstance(c, ast.Constant)}
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "ConfigDict"  # json_schema_extra examples for /docs
        ):
            ids |= {id(c) for c in ast.walk(node) if isinstance(c, ast.Constant)}
    return ids


def config_problems(source: str, where: str) -> list[str]:
    tree = ast.parse(source, where)
    skip = _documentation(tree)
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            text = node.value
            for match in URL.finditer(text):
                host = match.group("host").lower()
                if host not in PLACEHOLDER_HOSTS and not host.endswith(".example.com"):
                    problems.append(f"{where}:{node.lineno} hard-coded URL {match.group(0)!r}")
            for ip in IPV4.findall(text):
                if ip not in BIND_ANY and not URL.search(text):
                    problems.append(f"{where}:{node.lineno} hard-coded address {ip!r}")
            if SECRET_VALUE.search(text):
                problems.append(f"{where}:{node.lineno} secret-looking literal")
        # password = "...", Field(default="...") for a secret name, f(password="...")
        pairs: list[tuple[str, ast.expr | None]] = []
        if isinstance(node, ast.Assign):
            pairs = [(t.id, node.value) for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            pairs = [(node.target.id, node.value)]
        elif isinstance(node, ast.keyword) and node.arg:
            pairs = [(node.arg, node.value)]
        for name, value in pairs:
            if SECRET_NAME.search(name) and _non_empty_literal(value):
                problems.append(f"{where}:{value.lineno} literal value for {name!r}")  # type: ignore[union-attr]
    return problems


def _non_empty_literal(value: ast.expr | None) -> bool:
    if isinstance(value, ast.Call):  # Field(default="x"), SecretStr("x")
        args = [*value.args, *(k.value for k in value.keywords if k.arg == "default")]
        return any(_non_empty_literal(a) for a in args)
    return isinstance(value, ast.Constant) and isinstance(value.value, str) and bool(value.value)


def test_no_hard_coded_url_host_or_secret_in_the_source() -> None:
    problems = []
    files = [p for src in SOURCES for p in src.rglob("*.py")]
    assert len(files) > 40, "the scan found too few source files"
    for path in files:
        problems += config_problems(path.read_text(), str(path.relative_to(ROOT)))
    assert problems == []


def test_the_scanner_flags_hard_coded_config() -> None:
    bad = '''
"""Docs may say postgresql://user:pw@db.internal/app."""
from pydantic import Field
BROKER = "redis://cache.internal:6379/0"
DB = f"postgresql://app@{'db.prod'}:5432/app"
url: str = Field(default="x", description="e.g. https://api.partner.io/v1")
HOST = "10.0.3.7"
db_password = "hunter2"
client = connect(api_key="abc123")
TOKEN = Field(default="s3cr3t")
KEY = "cvk_0123456789abcdef"
'''
    problems = sorted(config_problems(bad, "bad.py"), key=lambda p: int(p.split()[0][7:]))
    assert [p.split(" ", 1)[1] for p in problems] == [
        "hard-coded URL 'redis://cache.internal'",
        "hard-coded URL 'postgresql://app'",
        "hard-coded address '10.0.3.7'",
        "literal value for 'db_password'",
        "literal value for 'api_key'",
        "literal value for 'TOKEN'",
        "secret-looking literal",
    ], problems
    ok = 'ADDR = "0.0.0.0"\nEXAMPLE = "postgresql://user:password@host:5432/db"\npassword = ""\n'
    assert config_problems(ok, "ok.py") == []


def _database(engines: Engines) -> str:
    url = engines.database(f"conveyor_{uuid.uuid4().hex[:10]}")
    from tests.support.processes import base_env

    done = run_admin(PROCFILE["release"], base_env(DATABASE_URL=url, REDIS_URL="redis://x:1/0"))
    assert done.returncode == 0, done.stdout + done.stderr
    return url


def test_the_api_boots_from_the_environment_alone(engines: Engines, tmp_path: Path) -> None:
    empty = tmp_path / "cwd"
    empty.mkdir()
    port = free_port()
    env = minimal_env(
        DATABASE_URL=_database(engines), REDIS_URL=fresh_redis_url(engines), PORT=str(port)
    )
    assert set(env) == {"DATABASE_URL", "REDIS_URL", "PORT", "PATH"}
    proc = spawn_in("web", PROCFILE["web"], env, empty, tmp_path / "logs")
    try:
        wait_api(proc, port)
        assert httpx.get(f"http://127.0.0.1:{port}/livez").status_code == 200
    finally:
        proc.stop()
    assert not (empty / ".env").exists()
    # The same command without its environment stops before any work.
    bare = spawn_in("web", PROCFILE["web"], minimal_env(), empty, tmp_path / "logs")
    assert bare.popen.wait(30) != 0
    assert "config error: DATABASE_URL is required but not set" in bare.output()


GARBAGE_REQUESTS = 2
INVALID = "Invalid HTTP request received."


def _same_traffic(port: int) -> None:
    """Requests that make a DEBUG line (a probe's access line), an INFO line (a
    401's access line) and WARNING lines (uvicorn's "Invalid HTTP request
    received." for bytes that are not HTTP), so each profile's level filter has
    something on both sides of it."""
    assert httpx.get(f"http://127.0.0.1:{port}/livez").status_code == 200
    assert httpx.get(f"http://127.0.0.1:{port}/v1/jobs").status_code == 401
    for _ in range(GARBAGE_REQUESTS):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            assert sock.recv(64).startswith(b"HTTP/1.1 400"), "uvicorn did not reject it"


def test_dev_and_prod_settings_differ_only_in_the_environment(
    engines: Engines, tmp_path: Path
) -> None:
    common = {"DATABASE_URL": _database(engines), "REDIS_URL": fresh_redis_url(engines)}
    profiles = {
        "dev": {"LOG_FORMAT": "console", "LOG_LEVEL": "DEBUG", "DB_POOL_SIZE": "2"},
        "prod": {"LOG_FORMAT": "json", "LOG_LEVEL": "WARNING", "DB_POOL_SIZE": "20"},
    }
    outputs = {}
    for name, settings in profiles.items():
        port = free_port()
        proc = spawn_in(
            "web",
            PROCFILE["web"],  # one command for both
            minimal_env(**common, **settings, PORT=str(port)),
            tmp_path,
            tmp_path / name,
        )
        try:
            wait_api(proc, port)
            _same_traffic(port)
        finally:
            proc.stop()
        outputs[name] = [line for line in proc.output().splitlines() if line.strip()]

    dev, prod = outputs["dev"], outputs["prod"]
    # Dev: console lines for people, INFO and DEBUG included.
    assert len(dev) >= 5, dev
    assert not any(line.startswith("{") for line in dev), dev
    assert any("GET /v1/jobs 401" in line for line in dev), dev
    assert any("GET /livez 200" in line for line in dev), dev  # a DEBUG line
    assert sum(INVALID in line for line in dev) == GARBAGE_REQUESTS, dev
    # Prod: the same traffic leaves only its warnings, each one JSON line; an
    # empty log would pass the per-line check, so count them first.
    assert len(prod) >= GARBAGE_REQUESTS, f"prod logged {len(prod)} lines: {prod}"
    events = [json.loads(line) for line in prod]
    assert all(e["level"] in {"warning", "error", "critical"} for e in events), prod
    assert [e["message"] for e in events].count(INVALID) == GARBAGE_REQUESTS, prod
