"""`make demo-scaling`: watch throughput rise and the queue drain as workers are added.

Local mode starts the stack (embedded Postgres and Redis, the API, the
scheduler) and runs two workloads:
  * CPU-bound `hash` jobs with 1, then 2 worker processes (more where cores allow);
  * IO-bound `sleep` jobs at rising concurrency.
It writes demo/scaling.png (throughput and queue depth over time per step) and
demo/scaling.md (the table), with a progress bar while it runs. Then the
independence scenario (bench/demo_pools.py): CPU and IO load together while the
`cpu` worker pool goes from 1 to 2 processes, into demo/pools.png and
demo/pools.md. `--scenario scaling` or `--scenario pools` runs one of the two.

Kubernetes mode (`--kubernetes`) drives a deployed Conveyor instead: it scales
the worker Deployment with kubectl and reads /v1/stats through --url/--key.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tqdm import tqdm

from bench.demo_pools import pools_demo, write_pools_outputs
from bench.harness import ROOT, Bench, bench_engines, stop_on_signals, submit_batches
from tests.support.processes import Proc

OUT = ROOT / "demo"


@dataclass
class Step:
    workload: str
    label: str
    processes: int
    jobs: int
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # t, jobs/s, depth
    seconds: float = 0.0

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.seconds if self.seconds else 0.0


def run_step(client: httpx.Client, step: Step, jobs: list[dict[str, object]]) -> None:
    """Submit a burst and sample /v1/stats until it is done."""
    before = client.get("/v1/stats").json()["counts"]
    done_before = before["succeeded"] + before["failed"]
    started = time.monotonic()
    submit_batches(client, jobs)
    last_t, last_done = started, done_before
    with tqdm(total=len(jobs), desc=f"{step.workload}: {step.label}", unit="job") as bar:
        while True:
            time.sleep(0.5)
            stats = client.get("/v1/stats").json()
            done = stats["counts"]["succeeded"] + stats["counts"]["failed"]
            now = time.monotonic()
            rate = (done - last_done) / (now - last_t)
            step.samples.append((now - started, rate, int(stats["queue_depth"] or 0)))
            bar.update(done - last_done)
            last_t, last_done = now, done
            if done - done_before >= len(jobs):
                break
    step.seconds = time.monotonic() - started


def local_demo(smoke: bool) -> list[Step]:
    steps: list[Step] = []
    cores = os.cpu_count() or 2
    workdir = Path(tempfile.mkdtemp(prefix="conveyor-demo-"))
    try:
        with bench_engines(workdir) as engines:
            stack = Bench(engines, workdir, smoke).stack()
            try:
                key = stack.create_key("demo")
                stack.start_api()
                stack.start_scheduler()
                with stack.client(key) as client:
                    iterations = 20_000 if smoke else 200_000
                    count = 6 if smoke else 40
                    for processes in sorted({1, 2, min(cores, 4)}):
                        workers: list[Proc] = [
                            stack.start_worker(concurrency=1) for _ in range(processes)
                        ]
                        step = Step("cpu", f"{processes} worker process(es)", processes, count)
                        run_step(
                            client,
                            step,
                            [
                                {
                                    "kind": "hash",
                                    "params": {
                                        "data": f"{processes}-{n}",
                                        "iterations": iterations,
                                    },
                                }
                                for n in range(count)
                            ],
                        )
                        steps.append(step)
                        for worker in workers:
                            worker.stop()
                    for concurrency in (1, 8) if smoke else (1, 4, 16, 32):
                        worker = stack.start_worker(concurrency=concurrency)
                        jobs = (3 if smoke else 10) * concurrency
                        step = Step("io", f"concurrency {concurrency}", concurrency, jobs)
                        run_step(client, step, [{"kind": "sleep", "params": {"ms": 200}}] * jobs)
                        steps.append(step)
                        worker.stop()
            finally:
                stack.stop()  # workers, scheduler and API, also on Ctrl-C or SIGTERM
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return steps


def kubernetes_demo(
    url: str, key: str, deployment: str, replicas: list[int], jobs: int
) -> list[Step]:
    steps = []
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as client:
        for count in replicas:
            subprocess.run(
                ["kubectl", "scale", f"deployment/{deployment}", f"--replicas={count}"], check=True
            )
            subprocess.run(["kubectl", "rollout", "status", f"deployment/{deployment}"], check=True)
            step = Step("cpu", f"{count} worker pod(s)", count, jobs)
            run_step(
                client,
                step,
                [
                    {"kind": "hash", "params": {"data": f"k{count}-{n}", "iterations": 200_000}}
                    for n in range(jobs)
                ],
            )
            steps.append(step)
    return steps


def write_outputs(steps: list[Step], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    workloads = sorted({s.workload for s in steps})
    fig, axes = plt.subplots(len(workloads), 2, figsize=(12, 4 * len(workloads)), squeeze=False)
    for row, workload in enumerate(workloads):
        for step in (s for s in steps if s.workload == workload):
            t = [x[0] for x in step.samples]
            axes[row][0].plot(t, [x[1] for x in step.samples], label=step.label)
            axes[row][1].plot(t, [x[2] for x in step.samples], label=step.label)
        axes[row][0].set(title=f"{workload}-bound: throughput", xlabel="s", ylabel="jobs/s")
        axes[row][1].set(title=f"{workload}-bound: queue depth", xlabel="s", ylabel="messages")
        for ax in axes[row]:
            ax.legend()
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "scaling.png", dpi=100)
    lines = [
        "| workload | step | jobs | seconds | jobs/s | vs first step |",
        "|---|---|---|---|---|---|",
    ]
    for workload in workloads:
        group = [s for s in steps if s.workload == workload]
        for step in group:
            lines.append(
                f"| {workload} | {step.label} | {step.jobs} | {step.seconds:.1f} | "
                f"{step.jobs_per_s:.2f} | {step.jobs_per_s / group[0].jobs_per_s:.2f}x |"
            )
    (out / "scaling.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwrote {out / 'scaling.png'} and {out / 'scaling.md'}")


def main() -> None:
    stop_on_signals()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny steps, for CI")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--kubernetes", action="store_true", help="scale a deployed worker")
    parser.add_argument("--url", default=os.environ.get("CONVEYOR_URL"))
    parser.add_argument("--key", default=os.environ.get("CONVEYOR_API_KEY"))
    parser.add_argument("--deployment", default="conveyor-worker")
    parser.add_argument("--replicas", default="1,2,4", help="comma-separated pod counts")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument(
        "--scenario",
        choices=["all", "scaling", "pools"],
        default="all",
        help="local mode: the scaling steps, the pools independence scenario, or both",
    )
    args = parser.parse_args()
    if args.kubernetes:
        if not args.url or not args.key:
            raise SystemExit(
                "--kubernetes needs --url and --key (or CONVEYOR_URL/CONVEYOR_API_KEY)"
            )
        steps = kubernetes_demo(
            args.url,
            args.key,
            args.deployment,
            [int(r) for r in args.replicas.split(",")],
            args.jobs,
        )
        write_outputs(steps, args.out)
        return
    if args.scenario in ("all", "scaling"):
        write_outputs(local_demo(args.smoke), args.out)
    if args.scenario in ("all", "pools"):
        write_pools_outputs(*pools_demo(args.smoke), args.out)


if __name__ == "__main__":
    main()
