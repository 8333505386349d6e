"""`make bench`: Conveyor against bare FastAPI and bare Celery, same machine, same run.

Writes bench/results.json and prints a table with the targets. `--only NAME` runs
one section (repeatable). `--smoke` runs a
tiny version of every measurement (CI uses it so the bench cannot rot); its
numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import api_bench, data_scale, e2e_latency, wait_bench, worker_bench
from bench.harness import ROOT, Bench, bench_engines, machine, stop_on_signals

# key path -> (comparison, target)
TARGETS: dict[str, tuple[str, float | str]] = {
    "api_submit.ratio": (">=", 0.25),
    "api_submit.p99_ms": ("<=", 50),
    "api_batch.jobs_per_s": (">=", "5 x api_submit.jobs_per_s"),
    "worker.ratio": (">=", 0.5),
    "scaling_cpu.speedup_2_vs_1": (">=", 1.7),
    "scaling_io.efficiency_32": (">=", 0.8),
    "startup.api_ready_s": ("<=", 2),
    "startup.worker_ready_s": ("<=", 3),
    "startup.api_stop_s": ("<=", 2),
    "memory.api_rss_mb": ("<=", 150),
    "tracing.drop": ("<=", 0.10),  # at the default head sampling (1 trace in 10)
    "wait_fanout.p99_ms": ("<=", 50),  # other routes while 500 clients wait on ?wait=30
    # Against the empty table, same run (bench/data_scale.py).
    "data_scale.submit_ratio": (">=", 0.9),
    "data_scale.worker_ratio": (">=", 0.9),
    "data_scale.stats_p99_ms": ("<=", 50),
    "data_scale.list_first_p99_ms": ("<=", 20),
    "data_scale.list_failed_p99_ms": ("<=", 20),
    "data_scale.list_deep_p99_ms": ("<=", 20),
    "e2e_latency.p50_ms": ("<=", "3 x e2e_latency.baseline_p50_ms"),
    "e2e_latency.p99_ms": ("<=", 50),
}
# A string target is a multiple of another result: "5 x section.key".


def _value(results: dict[str, Any], path: str) -> float:
    section, key = path.split(".")
    return float(results[section][key])


def verdicts(results: dict[str, Any]) -> list[tuple[str, float, str, bool]]:
    rows = []
    for path, (op, target) in TARGETS.items():
        if path.split(".")[0] not in results:
            continue  # a section this run skipped (--only)
        value = _value(results, path)
        goal = target if not isinstance(target, str) else _multiple(results, target)
        ok = value >= goal if op == ">=" else value <= goal
        rows.append((path, value, f"{op} {target}", ok))
    return rows


def _multiple(results: dict[str, Any], target: str) -> float:
    factor, path = target.split(" x ")
    return float(factor) * _value(results, path)


def table(results: dict[str, Any]) -> str:
    lines = ["| key | value | target | met |", "|---|---|---|---|"]
    for path, value, target, ok in verdicts(results):
        lines.append(f"| `{path}` | {value:g} | {target} | {'yes' if ok else 'NO'} |")
    return "\n".join(lines)


SECTIONS: dict[str, Callable[[Bench], dict[str, Any]]] = {
    "api_submit": api_bench.api_submit,
    "api_batch": api_bench.api_batch,
    "tracing": api_bench.tracing_overhead,
    "wait_fanout": wait_bench.wait_fanout,
    "worker": worker_bench.worker_e2e,
    "scaling_cpu": worker_bench.scaling_cpu,
    "scaling_io": worker_bench.scaling_io,
    "e2e_latency": e2e_latency.e2e_latency,
    "data_scale": data_scale.data_scale,
}


def main() -> None:
    stop_on_signals()  # SIGTERM, like Ctrl-C, stops every stack and engine on the way out
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny runs, for CI")
    parser.add_argument(
        "--out", type=Path, help="default bench/results.json; with --only, bench/out/only.json"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=[*SECTIONS, "startup"],
        help="run just this section (repeatable); startup includes memory",
    )
    args = parser.parse_args()
    if args.out is None:  # a partial run never overwrites the full results
        args.out = ROOT / "bench" / ("out/only.json" if args.only else "results.json")
    if shutil.which("wrk") is None:
        raise SystemExit("make bench needs wrk: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    try:
        results = run_all(workdir, args.smoke, args.only)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    m = results["machine"]
    print(f"\nmachine: {m['cores']} cores, {m['cpu_model']}, Python {m['python']}")
    print(table(results))
    print(f"\nwrote {args.out} in {results['duration_s']}s")


def run_all(workdir: Path, smoke: bool, only: list[str] | None = None) -> dict[str, Any]:
    started = time.monotonic()
    results: dict[str, Any] = {"machine": machine(), "smoke": smoke}
    with bench_engines(workdir) as engines:
        bench = Bench(engines, workdir, smoke)
        for name, measure in SECTIONS.items():
            if only and name not in only:
                continue
            print(f"bench: {name} ...", flush=True)
            bench.settle()
            results[name] = measure(bench)
            print(f"bench: {name} = {results[name]}", flush=True)
        if not only or "startup" in only:
            print("bench: startup and memory ...", flush=True)
            bench.settle()
            results["startup"], results["memory"] = api_bench.startup_and_memory(bench)
    results["duration_s"] = round(time.monotonic() - started, 1)
    return results


if __name__ == "__main__":
    main()
