"""Every process writes one JSON object per line to stdout, tied to requests, jobs and traces.

The stack runs with the test default `OTEL_TRACES_EXPORTER=none`: no collector,
yet the API's and the worker's lines for one job still share a trace id.
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from conveyor.common.settings import Settings
from conveyor.common.tasks import make_celery_client, publish_run_job
from conveyor.worker.app import CELERY_PER_TASK_LOGGERS
from tests.conftest import new_stack
from tests.support.engines import free_port
from tests.support.jobs import submit, wait_all_terminal
from tests.support.processes import PROCFILE, Proc, Stack, run_admin, spawn, wait_until

REQUIRED = ("timestamp", "level", "logger", "message")
LEVELS = {"debug", "info", "warning", "error", "critical"}
# Params the API would refuse (strict: "10" is not an int); see store_unreadable_job.
UNREADABLE_PARAMS = {"data": "x", "iterations": "10"}


def parse_lines(text: str, where: str) -> list[dict[str, Any]]:
    """Every non-empty line must be one JSON object with the required keys."""
    events = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"{where} line {number} is not JSON: {line[:300]!r}")
        assert isinstance(event, dict), (where, line)
        missing = [key for key in REQUIRED if key not in event]
        assert not missing, f"{where} line {number} lacks {missing}: {line[:300]}"
        assert event["level"] in LEVELS, line
        assert event["timestamp"].endswith("Z"), line
        events.append(event)
    return events


@pytest.fixture(scope="module")
def logs_stack(engines, tmp_path_factory) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    stack = new_stack(engines, tmp_path_factory.mktemp("logs"))
    try:
        stack.start_api()
        stack.start_worker(concurrency=2, METRICS_PORT=str(free_port()))
        stack.start_scheduler()
        yield stack
    finally:
        stack.stop()


def store_unreadable_job(stack: Stack, like_job_id: str) -> str:
    """A queued `hash` job whose stored params the worker's model rejects ("10"
    is not an int), as a row written by hand or by an older release would be;
    the API never accepts such params, so it goes in by SQL and is published
    like the API publishes. Running it raises inside the handler's try, and the
    worker logs that with its traceback."""
    job_id = uuid.uuid4()
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO jobs (id, tenant_id, kind, params, status, attempts, max_attempts)"
            " SELECT %s, tenant_id, 'hash', %s, 'queued', 0, 1 FROM jobs WHERE id = %s",
            (job_id, Jsonb(UNREADABLE_PARAMS), like_job_id),
        )
    settings = Settings(database_url=stack.database_url, redis_url=stack.redis_url)
    app = make_celery_client(settings, "unreadable-job")
    try:
        publish_run_job(app, job_id, "hash", UNREADABLE_PARAMS)
    finally:
        app.close()
    return str(job_id)


@pytest.fixture(scope="module")
def workload(logs_stack: Stack) -> dict[str, Any]:
    """Jobs that succeed, retry, fail, and raise (logged with a traceback), and a 404."""
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    with logs_stack.client(logs_stack.create_key("logs")) as client:
        job = client.post(
            "/v1/jobs",
            json={"kind": "sleep", "params": {"ms": 20}},
            headers={"X-Request-ID": request_id},
        ).json()
        ids = [job["id"]]
        ids.append(submit(client, "fail", {"rate": 1, "seed": 1}, max_attempts=2)["id"])
        ids.append(submit(client, "hash", {"data": "x", "iterations": 10})["id"])
        raising = store_unreadable_job(logs_stack, job["id"])
        ids.append(raising)
        assert client.get(f"/v1/jobs/{uuid.uuid4()}").status_code == 404
        jobs = wait_all_terminal(client, ids, timeout=60)
    assert jobs[raising]["status"] == "failed", jobs[raising]
    assert jobs[raising]["error"].startswith("ValidationError"), jobs[raising]
    return {"job": jobs[job["id"]], "request_id": request_id, "jobs": jobs, "raising": raising}


def test_admin_processes_write_json_lines(logs_stack: Stack) -> None:
    migrate = run_admin(PROCFILE["release"], logs_stack.env())
    assert migrate.returncode == 0, migrate.stderr
    assert migrate.stderr == ""
    events = parse_lines(migrate.stdout, "migrate")
    assert any(e["message"] == "schema already at head" for e in events), events

    created = run_admin("python scripts/create_api_key.py --tenant json-lines", logs_stack.env())
    assert created.returncode == 0, created.stderr
    assert created.stderr == ""
    *log_lines, key = created.stdout.splitlines()
    # The key itself is the command's output (docs/design.md, "Interfaces": its
    # last line), not a log event.
    assert key.startswith("cvk_") and " " not in key
    events = parse_lines("\n".join(log_lines), "create_api_key")
    assert [e["message"] for e in events] == ["api key created"]
    assert key not in "\n".join(log_lines)  # never logged


def test_access_log_has_route_status_duration_and_ids(
    logs_stack: Stack, workload: dict[str, Any]
) -> None:
    web = parse_lines(_output_of(logs_stack, "web"), "web")
    access = [e for e in web if e["logger"] == "conveyor.api.access"]
    submit_line = next(e for e in access if e.get("request_id") == workload["request_id"])
    assert submit_line["message"] == "POST /v1/jobs 202"
    assert submit_line["route"] == "/v1/jobs"
    assert submit_line["status"] == 202
    assert submit_line["duration_ms"] > 0
    assert len(submit_line["trace_id"]) == 32 and len(submit_line["span_id"]) == 16
    not_found = next(e for e in access if e["status"] == 404)
    assert not_found["route"] == "/v1/jobs/{job_id}"
    assert not_found["level"] == "info"
    # One line per request, and successful probes stay out of INFO.
    assert not any(e["path"] in ("/livez", "/readyz") and e["status"] == 200 for e in access)


def test_api_and_worker_lines_share_a_trace_id_without_a_collector(
    logs_stack: Stack, workload: dict[str, Any]
) -> None:
    job_id = workload["job"]["id"]
    web = parse_lines(_output_of(logs_stack, "web"), "web")
    worker = parse_lines(_output_of(logs_stack, "worker"), "worker")
    submit_line = next(e for e in web if e.get("request_id") == workload["request_id"])
    started = next(e for e in worker if e["message"] == "job started" and e["job_id"] == job_id)
    assert started["trace_id"] == submit_line["trace_id"]
    finished = next(e for e in worker if e["message"] == "job finished" and e["job_id"] == job_id)
    assert finished["trace_id"] == submit_line["trace_id"]
    assert finished["status"] == "succeeded" and finished["kind"] == "sleep"


def test_console_format_is_for_people(logs_stack: Stack) -> None:
    done = run_admin(PROCFILE["release"], logs_stack.env(LOG_FORMAT="console"))
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if "schema already at head" in line)
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)
    assert "info" in line and "conveyor.migrate" in line


def test_flower_logs_json_and_serves(logs_stack: Stack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("flower", reason="flower is the optional monitoring UI's dependency")
    port = free_port()
    proc = spawn("flower", PROCFILE["flower"], logs_stack.env(FLOWER_PORT=str(port)), tmp_path)
    try:
        wait_until(lambda: _serves(f"http://127.0.0.1:{port}/healthcheck", proc), 30, what="flower")
    finally:
        proc.signal(signal.SIGTERM)
        try:
            proc.popen.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill_group()
    events = parse_lines(proc.output(), "flower")
    assert any("Visit me at" in e["message"] for e in events), events
    # The broker URL is logged without its password, like Celery's own lines.
    assert all(":**@" in e["message"] for e in events if "Broker:" in e["message"])


def _serves(url: str, proc: Proc) -> bool:
    if not proc.alive():
        raise AssertionError(f"flower exited:\n{proc.output()[-3000:]}")
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _output_of(stack: Stack, name: str) -> str:
    """A process's output, whether or not an earlier test has stopped it."""
    logs = sorted(stack.log_dir.glob(f"{name}-*.log"))
    assert logs, f"no {name} log in {stack.log_dir}"
    return logs[-1].read_text()


def test_command_lines_are_the_procfiles() -> None:
    # What the chart, `make up` and these tests run: the same commands.
    assert shlex.split(PROCFILE["flower"]) == ["python", "-m", "conveyor.worker.flower"]


def test_every_line_of_every_long_running_process_is_json(
    logs_stack: Stack, workload: dict[str, Any]
) -> None:
    # Stop them so that their shutdown lines are in the output too.
    procs = list(logs_stack.procs)
    for proc in reversed(procs):
        assert proc.stop() == 0, proc.output()[-2000:]
    # stdout and stderr share one file here, so stray stderr text would fail too.
    outputs = {proc.name: parse_lines(proc.output(), proc.name) for proc in procs}
    loggers = {name: {e["logger"] for e in events} for name, events in outputs.items()}
    assert {"uvicorn.error", "conveyor.api.access"} <= loggers["web"], loggers["web"]
    assert {
        "celery.apps.worker",
        "celery.worker.consumer.connection",
        "conveyor.worker.run_job",
    } <= loggers["worker"], loggers["worker"]
    # Celery's per-task INFO lines give way to "job started" / "job finished".
    assert not loggers["worker"] & set(CELERY_PER_TASK_LOGGERS)
    assert "conveyor.scheduler" in loggers["scheduler"]
    assert "uvicorn.access" not in loggers["web"]  # replaced by conveyor.api.access

    worker = outputs["worker"]
    retried = [e for e in worker if e.get("status") == "queued"]
    assert retried and all(e["job_id"] for e in retried)
    # uvicorn's ANSI-coloured duplicate of each message is dropped.
    assert not any("color_message" in e for e in outputs["web"])


def test_a_logged_traceback_stays_inside_its_json_line(
    logs_stack: Stack, workload: dict[str, Any]
) -> None:
    # parse_lines fails on any line that is not JSON: a traceback spilled as raw
    # text ("Traceback (most recent call last):", "  File ...") would be such lines.
    worker = parse_lines(_output_of(logs_stack, "worker"), "worker")
    tracebacks = [e for e in worker if "exception" in e]
    assert tracebacks, "the worker logged no traceback: this check would prove nothing"
    for event in tracebacks:
        assert event["exception"].startswith("Traceback (most recent call last):"), event
    raised = [e for e in tracebacks if e.get("job_id") == workload["raising"]]
    assert [e["message"] for e in raised] == ["job raised; not retrying"], raised
    [event] = raised
    assert event["level"] == "error"
    frames = event["exception"].splitlines()
    assert len(frames) >= 4, frames  # multi-line: header, frames, the error itself
    assert any(line.startswith('  File "') for line in frames), frames
    assert "ValidationError" in event["exception"] and "iterations" in event["exception"]
