"""One job, one trace: API request → publish → worker run → SQL, across real processes.

The processes export over OTLP/HTTP (configured only by standard OTEL_* variables)
to a tiny receiver in this test, which decodes the protobuf requests with
opentelemetry-proto, exactly as a collector would receive them.
"""

from __future__ import annotations

import gzip
import json
import shlex
import subprocess
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from conveyor.worker.app import CELERY_PER_TASK_LOGGERS
from tests.conftest import new_stack
from tests.support.jobs import submit, wait_terminal
from tests.support.processes import PROCFILE, ROOT, Stack, base_env, wait_until

SERVER, CLIENT, PRODUCER, CONSUMER = (
    PbSpan.SPAN_KIND_SERVER,
    PbSpan.SPAN_KIND_CLIENT,
    PbSpan.SPAN_KIND_PRODUCER,
    PbSpan.SPAN_KIND_CONSUMER,
)


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    service: str
    attributes: dict[str, Any]
    resource: dict[str, Any]


@dataclass
class OtlpReceiver:
    """An OTLP/HTTP endpoint: POST /v1/traces with protobuf bodies."""

    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: int = 0

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.add(request)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, request: ExportTraceServiceRequest) -> None:
        received = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        ReceivedSpan(
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=span.kind,
                            service=str(resource.get("service.name")),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            resource=resource,
                        )
                    )
        with self._lock:
            self.requests += 1
            self.spans.extend(received)

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    rx = OtlpReceiver()
    try:
        yield rx
    finally:
        rx.close()


@pytest.fixture(scope="module")
def traced_stack(engines, tmp_path_factory, receiver: OtlpReceiver) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    stack = new_stack(
        engines,
        tmp_path_factory.mktemp("traced"),
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_TRACES_EXPORTER="otlp",
        # Every trace: the default samples one in ten (tracing_config.py).
        OTEL_TRACES_SAMPLER="parentbased_always_on",
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_RESOURCE_ATTRIBUTES="k8s.pod.name=pod-under-test,deployment.environment=ci",
        APP_VERSION="9.9.9-test",
    )
    try:
        stack.start_api()
        stack.start_worker(concurrency=2)
        stack.start_scheduler()
        yield stack
    finally:
        stack.stop()


@dataclass
class TracedJob:
    job: dict[str, Any]
    request_id: str
    trace_id: str
    spans: list[ReceivedSpan]


@pytest.fixture(scope="module")
def traced_job(traced_stack: Stack, receiver: OtlpReceiver) -> TracedJob:
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    with traced_stack.client(traced_stack.create_key("tracing")) as client:
        client.headers["X-Request-ID"] = request_id
        job = submit(client, "sleep", {"ms": 50})
        del client.headers["X-Request-ID"]  # the polls that follow are other requests
        done = wait_terminal(client, job["id"])
    assert done["status"] == "succeeded", done

    def access_line() -> dict[str, Any] | None:
        api = traced_stack.procs[0]
        for line in json_lines(api.output()):
            if line.get("request_id") == request_id and line.get("path") == "/v1/jobs":
                return line
        return None

    access = wait_until(access_line, 10, what="the API's access log line for the submit")
    trace_id = access["trace_id"]

    def complete() -> list[ReceivedSpan] | None:
        spans = receiver.trace(trace_id)
        # The worker's last SQL (the result write) closes the job: wait for it.
        worker_sql = [s for s in spans if s.service == "conveyor-worker" and s.kind == CLIENT]
        names = {s.name for s in spans}
        if len(worker_sql) >= 2 and "run/conveyor.run_job" in names:
            return spans
        return None

    wait_until(complete, 20, interval=0.2, what=f"trace {trace_id} to arrive")
    time.sleep(0.5)  # stragglers of the same batch
    return TracedJob(done, request_id, trace_id, receiver.trace(trace_id))


def _one(spans: list[ReceivedSpan], **match: Any) -> ReceivedSpan:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) == 1, (match, [(s.service, s.name, s.kind) for s in spans])
    return found[0]


def test_one_job_is_one_trace_with_correct_parents(traced_job: TracedJob) -> None:
    spans = traced_job.spans
    assert {s.trace_id for s in spans} == {traced_job.trace_id}

    request = _one(spans, service="conveyor-api", kind=SERVER)
    assert request.name == "POST /v1/jobs"
    assert request.parent_span_id == ""  # the client sent no traceparent: the trace starts here
    assert request.attributes.get("http.route") == "/v1/jobs"

    publish = _one(spans, service="conveyor-api", kind=PRODUCER)
    assert publish.name == "apply_async/conveyor.run_job"
    assert publish.parent_span_id == request.span_id

    run = _one(spans, service="conveyor-worker", kind=CONSUMER)
    assert run.name == "run/conveyor.run_job"
    assert run.parent_span_id == publish.span_id  # W3C context rode in the task headers
    assert run.attributes["conveyor.job_id"] == traced_job.job["id"]
    assert run.attributes["conveyor.kind"] == "sleep"

    worker_sql = [s for s in spans if s.service == "conveyor-worker" and s.kind == CLIENT]
    assert all(s.parent_span_id == run.span_id for s in worker_sql), worker_sql
    statements = " | ".join(str(s.attributes.get("db.statement", "")) for s in worker_sql)
    assert statements.count("UPDATE jobs") >= 2, statements  # the claim and the result
    assert all(s.attributes.get("db.system") == "postgresql" for s in worker_sql)

    api_sql = [
        s
        for s in spans
        if s.service == "conveyor-api" and s.kind == CLIENT and "db.system" in s.attributes
    ]
    assert any("INSERT INTO jobs" in str(s.attributes.get("db.statement")) for s in api_sql)
    assert all(s.parent_span_id == request.span_id for s in api_sql)


def test_spans_carry_service_version_and_resource_attributes(traced_job: TracedJob) -> None:
    for span in traced_job.spans:
        assert span.resource["service.version"] == "9.9.9-test"
        assert span.resource["k8s.pod.name"] == "pod-under-test"
        assert span.resource["deployment.environment"] == "ci"
    assert {s.service for s in traced_job.spans} == {"conveyor-api", "conveyor-worker"}


def test_api_and_worker_log_lines_carry_the_trace_id(
    traced_stack: Stack, traced_job: TracedJob
) -> None:
    api, worker = traced_stack.procs[0], traced_stack.procs[1]
    job_id = traced_job.job["id"]
    api_lines = [
        line for line in json_lines(api.output()) if line.get("request_id") == traced_job.request_id
    ]
    assert api_lines, "no API line for the request"
    assert all(line["trace_id"] == traced_job.trace_id for line in api_lines), api_lines
    access = next(line for line in api_lines if line["logger"] == "conveyor.api.access")
    assert access["route"] == "/v1/jobs"
    assert access["status"] == 202

    worker_lines = [line for line in json_lines(worker.output()) if line.get("job_id") == job_id]
    messages = {line["message"] for line in worker_lines}
    assert {"job started", "job finished"} <= messages, messages
    # At INFO, Celery's per-task lines ("received", "succeeded in") give way to ours.
    assert not {line["logger"] for line in worker_lines} & set(CELERY_PER_TASK_LOGGERS)
    for line in worker_lines:
        assert line["trace_id"] == traced_job.trace_id, line
        assert len(line["span_id"]) == 16
    # The worker's lines name the run span (or a SQL span under it) as their span.
    run = _one(traced_job.spans, service="conveyor-worker", kind=CONSUMER)
    started = next(line for line in worker_lines if line["message"] == "job started")
    assert started["span_id"] == run.span_id


def test_probes_and_scrapes_make_no_traces(traced_stack: Stack, receiver: OtlpReceiver) -> None:
    with traced_stack.client(None) as client:
        for path in ("/livez", "/readyz", "/metrics"):
            assert client.get(path).status_code == 200
    time.sleep(1.0)  # two export intervals
    routes = {s.attributes.get("http.route") for s in receiver.spans if s.kind == SERVER}
    assert not routes & {"/livez", "/readyz", "/metrics"}
    # SQL and Redis calls outside any request or task (the probes' own checks,
    # lease renewals, the reconciler's scans) start no trace of their own.
    orphans = [s for s in receiver.spans if s.kind == CLIENT and not s.parent_span_id]
    assert not orphans, [(s.service, s.name) for s in orphans[:5]]


@pytest.mark.parametrize("process", ["web", "worker", "scheduler"])
def test_bad_otel_variables_stop_the_process_before_any_work(process: str) -> None:
    env = base_env(
        DATABASE_URL="postgresql://u:p@127.0.0.1:1/db",  # never reached: config fails first
        REDIS_URL="redis://127.0.0.1:1/0",
        OTEL_TRACES_EXPORTER="zipkin",
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
    )
    command = shlex.split(PROCFILE[process])
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert [line.split()[:3] for line in lines] == [
        ["config", "error:", "OTEL_TRACES_EXPORTER"],
        ["config", "error:", "OTEL_EXPORTER_OTLP_PROTOCOL"],
    ], done.stderr
    # The worker stops in its main process, before any prefork child exists.
    assert "ready" not in done.stdout


def test_an_unsampled_job_exports_nothing_and_its_logs_still_share_a_trace_id(
    engines, tmp_path: Path, receiver: OtlpReceiver
) -> None:  # type: ignore[no-untyped-def]
    # The default sampler (parentbased_traceidratio) at ratio 0: no job is sampled.
    stack = new_stack(
        engines,
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_TRACES_SAMPLER_ARG="0",
        OTEL_BSP_SCHEDULE_DELAY="200",
    )
    try:
        stack.start_api()
        stack.start_worker(concurrency=1)
        request_id = f"req-{uuid.uuid4().hex[:12]}"
        with stack.client(stack.create_key("unsampled")) as client:
            client.headers["X-Request-ID"] = request_id
            job = submit(client, "sleep", {"ms": 10})
            del client.headers["X-Request-ID"]
            assert wait_terminal(client, job["id"])["status"] == "succeeded"
        api, worker = stack.procs[0], stack.procs[1]

        def finished() -> dict[str, Any] | None:
            return next(
                (
                    line
                    for line in json_lines(worker.output())
                    if line.get("job_id") == job["id"] and line["message"] == "job finished"
                ),
                None,
            )

        worker_line = wait_until(finished, 10, what="the worker's job finished line")
        access = next(
            line
            for line in json_lines(api.output())
            if line.get("request_id") == request_id and line.get("path") == "/v1/jobs"
        )
    finally:
        stack.stop()
    assert len(access["trace_id"]) == 32
    assert worker_line["trace_id"] == access["trace_id"]
    time.sleep(0.5)  # two export intervals
    assert receiver.trace(access["trace_id"]) == []
