"""Factor XI, Logs: treat logs as event streams.

Every process (api, worker, scheduler, migrate, create_api_key) writes only
JSON lines to stdout, one event per line, and nothing to stderr; the key
script's last line is its output (the key), the one exemption. No process
writes a log file anywhere: run with cwd, HOME and TMPDIR in fresh
directories, nothing appears in the first two, no *.log in the third or in
/tmp, and while they run no process holds a *.log file open for writing.
Related: tests/integration/test_observability_logs.py (fields, trace ids,
the console format), tests/unit/test_logging.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import psutil

from tests.conftest import new_stack
from tests.support.engines import ROOT, Engines, free_port
from tests.support.jobs import submit, wait_terminal
from tests.support.processes import PROCFILE
from tests.twelve_factor.conftest import Spawned, spawn_in, wait_api, wait_output


def non_json_lines(text: str, exempt_last: bool = False) -> list[str]:
    """Lines that are not one JSON object with a level and a message."""
    lines = [line for line in text.splitlines() if line.strip()]
    if exempt_last and lines:
        lines = lines[:-1]
    bad = []
    for line in lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            bad.append(line)
            continue
        if not isinstance(event, dict) or not {"level", "message"} <= event.keys():
            bad.append(line)
    return bad


def test_the_checker_flags_plain_text() -> None:
    good = '{"level": "info", "message": "started"}\n\n'
    assert non_json_lines(good) == []
    assert non_json_lines(good + "Traceback (most recent call last):\n") == [
        "Traceback (most recent call last):"
    ]
    assert non_json_lines(good + "[2026-01-01 12:00:00] INFO started\n") != []
    assert non_json_lines('["not", "an event"]\n{"message": "no level"}\n') == [
        '["not", "an event"]',
        '{"message": "no level"}',
    ]
    assert non_json_lines(good + "cvk_thekey\n", exempt_last=True) == []


def test_the_open_file_check_sees_a_log_held_open(tmp_path: Path) -> None:
    # The no-log-file check below relies on _open_for_writing; it must see one.
    held = tmp_path / "app.log"
    code = f"import time; f = open({str(held)!r}, 'a'); print('open', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
        assert str(held) in _open_for_writing(proc.pid)
    finally:
        proc.kill()
        proc.wait(10)
    assert _open_for_writing(proc.pid) == set()  # gone: nothing, and no error


def _log_files(root: Path, depth: int) -> set[Path]:
    found: set[Path] = set()
    base = len(root.parts)
    for directory, dirs, files in os.walk(root, onerror=lambda _: None):
        if len(Path(directory).parts) - base >= depth:
            dirs.clear()
        found |= {Path(directory) / f for f in files if f.endswith(".log")}
    return found


def _open_for_writing(pid: int) -> set[str]:
    """Regular files a process tree holds open for writing."""
    paths: set[str] = set()
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return paths
    for proc in procs:
        try:
            for f in proc.open_files():
                if f.mode in {"w", "a", "r+", "a+", "w+"}:
                    paths.add(f.path)
        except psutil.Error:
            continue
    return paths


def test_every_process_logs_json_lines_to_stdout_and_writes_no_log_file(
    engines: Engines, tmp_path: Path
) -> None:
    stack = new_stack(engines, tmp_path / "setup")
    dirs = {name: tmp_path / name for name in ("cwd", "home", "tmp")}
    for d in dirs.values():
        d.mkdir()
    env = stack.env(HOME=str(dirs["home"]), TMPDIR=str(dirs["tmp"]))
    outputs = tmp_path / "outputs"  # where the test keeps the streams, not the processes
    system_tmp = Path(tempfile.gettempdir())
    before = _log_files(system_tmp, 2)

    def one_off(name: str, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / name), *args],
            cwd=dirs["cwd"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    migrate = one_off("migrate.py")
    keyed = one_off("create_api_key.py", "--tenant", "logs")
    key = keyed.stdout.strip().splitlines()[-1]
    port = free_port()
    procs: list[Spawned] = []
    held: set[str] = set()
    try:
        api = spawn_in(
            "web",
            PROCFILE["web"],
            {**env, "PORT": str(port)},
            dirs["cwd"],
            outputs,
            split_stderr=True,
        )
        procs.append(api)
        worker_env = {
            **env,
            "HEARTBEAT_FILE": str(tmp_path / "hb"),
            "METRICS_PORT": str(free_port()),
        }
        worker = spawn_in(
            "worker", PROCFILE["worker"], worker_env, dirs["cwd"], outputs, split_stderr=True
        )
        procs.append(worker)
        scheduler = spawn_in(
            "scheduler", PROCFILE["scheduler"], env, dirs["cwd"], outputs, split_stderr=True
        )
        procs.append(scheduler)
        wait_api(api, port)
        wait_output(worker, "ready")
        wait_output(scheduler, "scheduler started")
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}
        ) as client:
            job = submit(client, "hash", {"data": "logs", "iterations": 3})
            assert wait_terminal(client, job["id"])["status"] == "succeeded"
            assert client.get("/v1/jobs/00000000-0000-0000-0000-000000000000").status_code == 404
        for proc in procs:
            held |= _open_for_writing(proc.popen.pid)
    finally:
        for proc in reversed(procs):
            proc.stop()

    streams: dict[str, tuple[str, str, bool]] = {
        "migrate": (migrate.stdout, migrate.stderr, False),
        "create_api_key": (keyed.stdout, keyed.stderr, True),
        **{p.name: (p.output(), p.stderr(), False) for p in procs},
    }
    for name, (stdout, stderr, exempt_last) in streams.items():
        assert stdout.strip(), f"{name} logged nothing"
        assert non_json_lines(stdout, exempt_last) == [], name
        assert stderr == "", f"{name} wrote to stderr: {stderr[:500]}"
    assert [p for p in held if p.endswith(".log")] == []
    assert list(dirs["cwd"].iterdir()) == []
    assert list(dirs["home"].iterdir()) == []
    assert _log_files(dirs["tmp"], 10) == set()
    new_in_tmp = _log_files(system_tmp, 2) - before
    assert [p for p in new_in_tmp if "conveyor" in p.name or "celery" in p.name] == []
