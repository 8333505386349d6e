"""A real Prometheus (Debian's `prometheus` package) for the observability tier:
it scrapes given targets every second and evaluates the given rule groups."""

from __future__ import annotations

import contextlib
import math
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.engines import free_port

SCRAPE_INTERVAL = "1s"


def prometheus_binary() -> str | None:
    return shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").is_file() else None
    )


@dataclass
class Prometheus:
    url: str
    log_path: Path

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector (scalars come back as one sample)."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", (expr, body)
        data = body["data"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def values(self, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
        """{sorted label pairs: value} for an instant query."""
        return {tuple(sorted(s["metric"].items())): float(s["value"][1]) for s in self.query(expr)}

    def scalar(self, expr: str) -> float:
        found = self.values(expr)
        assert len(found) == 1, (expr, found)
        return next(iter(found.values()))

    def wait_for(self, what: str, predicate: Any, timeout: float = 60) -> Any:
        """Poll until predicate() returns a truthy value; fail with the last value seen."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            with contextlib.suppress(AssertionError):
                last = predicate()
                if last:
                    return last
            time.sleep(0.5)
        raise AssertionError(f"{what}: not true after {timeout}s (last: {last})\n{self.log_tail()}")

    def targets_up(self) -> dict[str, float]:
        return {dict(k)["instance"]: v for k, v in self.values("up").items()}

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]


@contextlib.contextmanager
def run_prometheus(
    binary: str,
    workdir: Path,
    jobs: dict[str, list[str]],
    rule_groups: list[dict[str, Any]],
    scrape_configs: Sequence[dict[str, Any]] = (),
) -> Iterator[Prometheus]:
    """Prometheus scraping `jobs` ({job name: [host:port]}), and any other
    `scrape_configs` as given, with `rule_groups`."""
    rules = workdir / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": rule_groups}))
    config = workdir / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {
                    "scrape_interval": SCRAPE_INTERVAL,
                    "scrape_timeout": SCRAPE_INTERVAL,
                    "evaluation_interval": SCRAPE_INTERVAL,
                },
                "rule_files": [str(rules)],
                "scrape_configs": [
                    {"job_name": name, "static_configs": [{"targets": targets}]}
                    for name, targets in jobs.items()
                ]
                + list(scrape_configs),
            }
        )
    )
    port = free_port()
    log_path = workdir / "prometheus.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    prom = Prometheus(f"http://127.0.0.1:{port}", log_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"prometheus exited {proc.returncode}:\n{prom.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{prom.url}/-/ready", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"prometheus not ready after 30s:\n{prom.log_tail()}")
            time.sleep(0.2)
        yield prom
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def is_number(value: float) -> bool:
    return not math.isnan(value)
