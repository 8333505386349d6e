"""The worker's /metrics answers with its metric families from its first scrape,
before any pool child has written a sample (`make up` prints the URL as soon as
the worker serves it, and a user's first `curl` got an empty body).

Multiprocess mode is chosen when prometheus_client is first imported, so the
worker's main process is played by a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]

MAIN_PROCESS = textwrap.dedent(
    """
    import json, os, signal, sys, time, urllib.request
    from tests.support.engines import free_port

    port = free_port()

    def scrape():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            return r.read().decode()

    seen = {}
    if sys.argv[1] == "server_alone":
        from conveyor.worker.metrics_server import prepare_multiprocess_dir, start_metrics_server

        assert start_metrics_server(port, prepare_multiprocess_dir())
        seen["before_fork"] = scrape()
    else:
        from celery import signals
        from conveyor.worker.app import create_celery_app
        from conveyor.worker.metrics import worker_metrics
        from conveyor.worker.settings import WorkerSettings

        create_celery_app(WorkerSettings(
            database_url="postgresql+psycopg://u:p@db/conveyor",
            redis_url="redis://r:6379/0",
            metrics_port=port,
            log_level="WARNING",
        ))
        signals.worker_init.send(sender=None)  # what Celery sends before the pool forks
        seen["before_fork"] = scrape()
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # a pool child, as worker_process_init leaves it
            worker_metrics().processes.set(1)
            os.write(write, b"x")
            time.sleep(30)
            os._exit(0)
        os.read(read, 1)
        seen["one_child"] = scrape()
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    print(json.dumps(seen))
    """
)


def run_main_process(mode: str) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", MAIN_PROCESS, mode],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return seen


def sample(body: str, name: str) -> float | None:
    """The label-less sample `name` in Prometheus text, or None if absent."""
    for family in text_string_to_metric_families(body):
        for found in family.samples:
            if found.name == name and not found.labels:
                return float(found.value)
    return None


def test_the_summed_directory_alone_serves_an_empty_body_before_any_child() -> None:
    # The control: what the worker served until a child wrote its first sample.
    assert run_main_process("server_alone")["before_fork"] == ""


def test_the_worker_serves_its_gauges_before_any_child_and_they_add_nothing() -> None:
    seen = run_main_process("worker")
    before = seen["before_fork"]
    assert "# TYPE conveyor_worker_processes gauge" in before, before
    assert "# TYPE conveyor_jobs_running gauge" in before, before
    assert sample(before, "conveyor_worker_processes") == 0.0
    assert sample(before, "conveyor_jobs_running") == 0.0
    # One live child: the main process's zero adds nothing to the sum.
    assert sample(seen["one_child"], "conveyor_worker_processes") == 1.0, seen["one_child"]
