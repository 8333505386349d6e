"""API measurements: single submits against a bare FastAPI baseline, batches,
start-up and shutdown times, and idle memory."""

from __future__ import annotations

import functools
import signal
import time

import httpx

from bench.harness import Bench, interleave, rss_mb, spawn, wait_until, wrk
from conveyor.common.tracing_config import DEFAULT_RATIO, DEFAULT_SAMPLER
from tests.support.engines import free_port
from tests.support.processes import PROCFILE, base_env


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _interleaved(
    targets: dict[str, tuple[str, str | None]],
    rounds: int,
    seconds: int,
    ratio_of: tuple[str, str],
) -> dict[str, dict[str, float]]:
    """wrk against each target in turn, after a warm-up; the round with the
    median ratio of the two named targets' rates (see `interleave`)."""
    for url, key in targets.values():
        wrk(url, 2, 32, key)  # warm-up: pools, caches, first-call paths
    measures = {
        name: functools.partial(wrk, url, seconds, 32, key) for name, (url, key) in targets.items()
    }
    top, bottom = ratio_of
    return interleave(
        measures, rounds, score=lambda run: run[top]["req_per_s"] / run[bottom]["req_per_s"]
    )


def api_submit(bench: Bench) -> dict[str, float]:
    rounds, seconds = (1, 3) if bench.smoke else (3, 5)
    stack = bench.stack()
    key = stack.create_key("bench")
    stack.start_api()
    port = free_port()
    baseline = spawn(
        "baseline-api",
        f"python -m uvicorn --factory bench.baseline_api:create_app --host 0.0.0.0 --port {port} "
        "--no-server-header --log-level info",
        base_env(),
        bench.workdir / "logs",
    )
    try:
        wait_until(lambda: _ready(f"http://127.0.0.1:{port}/docs"), 30, what="baseline API")
        measured = _interleaved(
            {
                "ours": (f"{stack.api_url}/v1/jobs", key),
                "baseline": (f"http://127.0.0.1:{port}/v1/jobs", None),
            },
            rounds,
            seconds,
            ratio_of=("ours", "baseline"),
        )
    finally:
        baseline.stop()
        stack.stop()
    ours, base = measured["ours"], measured["baseline"]
    return {
        "jobs_per_s": round(ours["req_per_s"], 1),
        "p50_ms": round(ours["p50_ms"], 2),
        "p99_ms": round(ours["p99_ms"], 2),
        "baseline_req_per_s": round(base["req_per_s"], 1),
        "ratio": round(ours["req_per_s"] / base["req_per_s"], 3),
    }


def tracing_overhead(bench: Bench) -> dict[str, float | str]:
    """Submit throughput with tracing exported to a local OTLP sink, against off.

    `drop` is at the production default: no OTEL_TRACES_SAMPLER, so the code's
    head sampling (parentbased_traceidratio at 0.1) applies. `drop_all_sampled`,
    every trace exported, is reported for information.

    Fifteen rounds, not three: the drop at one trace in ten is a few percent,
    and one round's ratio here varies by 6-9 % (tracing off against itself);
    at seven rounds full runs of the same code gave 0.075 to 0.17. Every trace
    exported is measured apart, after: interleaved with the other two, its
    exporter went on sending (and the sink parsing) into the next measurement,
    which in every other round was the default's."""
    rounds, seconds = (1, 3) if bench.smoke else (15, 4)
    sink_port = free_port()
    sink = spawn(
        "otlp-sink", f"python -m bench.otlp_sink {sink_port}", base_env(), bench.workdir / "logs"
    )
    exporting = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
    }
    modes: dict[str, dict[str, str]] = {
        "off": {},
        "default": exporting,
        "all": {**exporting, "OTEL_TRACES_SAMPLER": "parentbased_always_on"},
    }
    stacks = []
    try:
        targets = {}
        for mode, env in modes.items():
            stack = bench.stack()
            stacks.append(stack)
            key = stack.create_key("bench")
            stack.start_api(**env)
            targets[mode] = (f"{stack.api_url}/v1/jobs", key)
        pair = {mode: targets[mode] for mode in ("off", "default")}
        default = _interleaved(pair, rounds, seconds, ratio_of=("default", "off"))
        pair = {mode: targets[mode] for mode in ("off", "all")}
        every = _interleaved(pair, 3, seconds, ratio_of=("all", "off"))
    finally:
        for stack in stacks:
            stack.stop()
        sink.stop()
    off, on, everything_off, everything = (
        run[mode]["req_per_s"]
        for run, mode in ((default, "off"), (default, "default"), (every, "off"), (every, "all"))
    )
    return {
        "sampler": f"{DEFAULT_SAMPLER} {DEFAULT_RATIO}",
        "jobs_per_s_off": round(off, 1),
        "jobs_per_s_default": round(on, 1),
        "drop": round(1 - on / off, 3),
        "jobs_per_s_all_sampled": round(everything, 1),
        "drop_all_sampled": round(1 - everything / everything_off, 3),
    }


def api_batch(bench: Bench) -> dict[str, float]:
    stack = bench.stack()
    key = stack.create_key("bench")
    stack.start_api()
    batches = 3 if bench.smoke else 10
    body = {"jobs": [{"kind": "sleep", "params": {"ms": 0}}] * 1000}
    with stack.client(key) as client:
        assert client.post("/v1/jobs:batch", json=body).status_code == 202  # warm-up
        started = time.perf_counter()
        for _ in range(batches):
            response = client.post("/v1/jobs:batch", json=body)
            assert response.status_code == 202, response.text
        elapsed = time.perf_counter() - started
    stack.stop()
    return {"jobs_per_s": round(batches * 1000 / elapsed, 1)}


def startup_and_memory(bench: Bench) -> tuple[dict[str, float], dict[str, float]]:
    stack = bench.stack()
    port = free_port()
    runs = 1 if bench.smoke else 3
    ready_s, stop_s, rss = [], [], []
    for _ in range(runs):
        started = time.monotonic()
        proc = spawn("web", PROCFILE["web"], stack.env(PORT=str(port)), bench.workdir / "logs")
        wait_until(
            lambda: _ready(f"http://127.0.0.1:{port}/readyz"), 30, interval=0.01, what="API ready"
        )
        ready_s.append(time.monotonic() - started)
        time.sleep(1)
        rss.append(rss_mb(proc.popen.pid))
        stopping = time.monotonic()
        proc.popen.send_signal(signal.SIGTERM)
        proc.popen.wait(30)
        stop_s.append(time.monotonic() - stopping)

    worker_s = []
    for _ in range(runs):
        started = time.monotonic()
        worker = stack.start_worker(concurrency=2)
        worker_s.append(time.monotonic() - started)
        worker.stop()
    return (
        {
            "api_ready_s": round(min(ready_s), 3),
            "worker_ready_s": round(min(worker_s), 3),
            "api_stop_s": round(min(stop_s), 3),
        },
        {"api_rss_mb": round(max(rss), 1)},
    )
