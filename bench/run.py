"""`make bench`: Conveyor against bare FastAPI and bare Celery, same machine, same run.

Writes bench/results.json and prints a table with the targets. `--smoke` runs a
tiny version of every measurement (CI uses it so the bench cannot rot); its
numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import api_bench, wait_bench, worker_bench
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
}


def _value(results: dict[str, Any], path: str) -> float:
    section, key = path.split(".")
    return float(results[section][key])


def verdicts(results: dict[str, Any]) -> list[tuple[str, float, str, bool]]:
    rows = []
    for path, (op, target) in TARGETS.items():
        value = _value(results, path)
        goal = 5 * _value(results, "api_submit.jobs_per_s") if isinstance(target, str) else target
        ok = value >= goal if op == ">=" else value <= goal
        rows.append((path, value, f"{op} {target}", ok))
    return rows


def table(results: dict[str, Any]) -> str:
    lines = ["| key | value | target | met |", "|---|---|---|---|"]
    for path, value, target, ok in verdicts(results):
        lines.append(f"| `{path}` | {value:g} | {target} | {'yes' if ok else 'NO'} |")
    return "\n".join(lines)


def main() -> None:
    stop_on_signals()  # SIGTERM, like Ctrl-C, stops every stack and engine on the way out
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny runs, for CI")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("make bench needs wrk: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    try:
        results = run_all(workdir, args.smoke)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    m = results["machine"]
    print(f"\nmachine: {m['cores']} cores, {m['cpu_model']}, Python {m['python']}")
    print(table(results))
    print(f"\nwrote {args.out} in {results['duration_s']}s")


def run_all(workdir: Path, smoke: bool) -> dict[str, Any]:
    started = time.monotonic()
    results: dict[str, Any] = {"machine": machine(), "smoke": smoke}
    with bench_engines(workdir) as engines:
        bench = Bench(engines, workdir, smoke)
        steps = [
            ("api_submit", api_bench.api_submit),
            ("api_batch", api_bench.api_batch),
            ("tracing", api_bench.tracing_overhead),
            ("wait_fanout", wait_bench.wait_fanout),
            ("worker", worker_bench.worker_e2e),
            ("scaling_cpu", worker_bench.scaling_cpu),
            ("scaling_io", worker_bench.scaling_io),
        ]
        for name, measure in steps:
            print(f"bench: {name} ...", flush=True)
            results[name] = measure(bench)
            print(f"bench: {name} = {results[name]}", flush=True)
        print("bench: startup and memory ...", flush=True)
        results["startup"], results["memory"] = api_bench.startup_and_memory(bench)
    results["duration_s"] = round(time.monotonic() - started, 1)
    return results


if __name__ == "__main__":
    main()
