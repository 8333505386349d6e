"""The Conveyor Grafana dashboard, as code: `make dashboard` writes
deploy/helm/conveyor/dashboards/conveyor-dashboard.json (deploy/grafana/
conveyor-dashboard.json links to it), and tests/deploy/test_dashboard_generated.py
fails when the committed JSON is not what this file generates.

Built with grafanalib: pure Python, on PyPI, with typed builders for panels,
targets and variables, so a review reads a short list of panels and queries
instead of 1,500 lines of JSON. grafana-foundation-sdk is Grafana's own, but
newer and heavier (generated code for every panel type and schema version) for
the two panel types used here.

Every query filters on the dashboard's `$namespace` (and, for job metrics,
`$kind`) variables and reads only metrics the code exports; the data source is
the dashboard's own variable, never a baked-in UID.

    python deploy/grafana/dashboard.py          # write the JSON
    python deploy/grafana/dashboard.py --check  # exit 1 if the committed JSON differs
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import attr
from grafanalib import core as g
from grafanalib._gen import DashboardEncoder

OUTPUT = Path(__file__).resolve().parents[1] / "helm" / "conveyor" / "dashboards"
OUTPUT_FILE = OUTPUT / "conveyor-dashboard.json"

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
NS = 'namespace=~"$namespace"'
NS_KIND = 'namespace=~"$namespace",kind=~"$kind"'
NOT_PROBES = 'route!~"/livez|/readyz|/metrics"'
RATE = "[$__rate_interval]"
# Alerts from deploy/prometheus/conveyor-rules.yml (they keep the namespace label).
FIRING = f'ALERTS{{alertstate="firing",alertname=~"Conveyor.*",{NS}}}'


@attr.s
class PromTarget(g.Target):  # type: ignore[misc]
    """grafanalib's Target, plus Grafana's `range` flag (the opposite of instant)."""

    def to_json_data(self) -> dict[str, Any]:
        data: dict[str, Any] = super().to_json_data()
        data["range"] = not self.instant
        return data


def steps(*pairs: tuple[str, float | None]) -> list[dict[str, Any]]:
    return [{"color": color, "value": value} for color, value in pairs]


GREEN = ("green", None)


@dataclass
class Panel:
    """One panel: its title, queries as (expr, legend), and how to draw it."""

    title: str
    description: str
    queries: list[tuple[str, str]]
    unit: str = "short"
    stat: bool = False
    thresholds: list[dict[str, Any]] = field(default_factory=lambda: steps(GREEN))
    decimals: int | None = None
    stacked: bool = False
    width: int = 12
    height: int = 8

    def build(self, panel_id: int, x: int, y: int) -> g.Panel:
        common: dict[str, Any] = {
            "id": panel_id,
            "title": self.title,
            "description": self.description,
            "dataSource": DATASOURCE,
            "gridPos": g.GridPos(h=self.height, w=self.width, x=x, y=y),
            "targets": [
                PromTarget(
                    expr=expr,
                    legendFormat=legend,
                    refId=chr(ord("A") + i),
                    instant=self.stat,
                    datasource=DATASOURCE,
                )
                for i, (expr, legend) in enumerate(self.queries)
            ],
            "thresholds": self.thresholds,
            # grafanalib's default is 100 points; Grafana's own is the panel's width.
            "maxDataPoints": None,
        }
        if self.stat:
            return g.Stat(
                **common,
                format=self.unit,
                decimals=self.decimals,
                reduceCalc="lastNotNull",
                noValue="No data",  # Grafana's own text (grafanalib's default: "none")
                graphMode="area",
            )
        return g.TimeSeries(
            **common,
            unit=self.unit,
            valueMin=0,
            fillOpacity=10,
            showPoints="never",
            stacking={"mode": "normal" if self.stacked else "none", "group": "A"},
            legendDisplayMode="table",
            legendCalcs=["mean", "max", "lastNotNull"],
            tooltipMode="multi",
            tooltipSort="desc",
        )


def stat(title: str, description: str, expr: str, unit: str, **kw: Any) -> Panel:
    return Panel(title, description, [(expr, title)], unit, stat=True, width=4, height=4, **kw)


def quantiles(metric: str, by: str, matchers: str, qs: tuple[float, ...], legend: str) -> list:
    """histogram_quantile queries, one per quantile, legend prefixed p50/p95/..."""
    out = []
    for q in qs:
        expr = f"histogram_quantile({q}, sum by ({by}) (rate({metric}_bucket{{{matchers}}}{RATE})))"
        prefix = f"p{round(q * 100)}"
        out.append((expr, f"{prefix} {legend}".strip() if legend != "-" else prefix))
    return out


FINISHED = f"conveyor_jobs_finished_total{{{NS_KIND}}}"

ROWS: list[tuple[str, list[Panel]]] = [
    (
        "Overview",
        [
            stat(
                "Jobs finished / s",
                "Job attempts finishing per second, all kinds and statuses"
                " (worker metric conveyor_jobs_finished_total).",
                f"sum(rate({FINISHED}{RATE}))",
                "reqps",
                decimals=2,
            ),
            stat(
                "Queue depth",
                "Job messages waiting in Redis for a worker, every queue together"
                " (conveyor_queue_depth, read by the API at scrape time; max over API"
                " replicas, then the sum over queues).",
                f"sum(max by (queue) (conveyor_queue_depth{{{NS}}}))",
                "short",
                thresholds=steps(GREEN, ("orange", 100), ("red", 1000)),
            ),
            stat(
                "Queue wait p95",
                "95th percentile of the time a job message waited for a worker"
                " (conveyor_job_queue_wait_seconds).",
                "histogram_quantile(0.95, sum by (le) (rate("
                f"conveyor_job_queue_wait_seconds_bucket{{{NS_KIND}}}{RATE})))",
                "s",
                thresholds=steps(GREEN, ("orange", 5), ("red", 30)),
            ),
            stat(
                "Worker pods",
                "Worker pods reporting metrics: each exposes one conveyor_worker_processes series.",
                f"count(conveyor_worker_processes{{{NS}}})",
                "short",
            ),
            stat(
                "Busy processes",
                "Pool processes running a job now, out of all live ones"
                " (conveyor_jobs_running / conveyor_worker_processes).",
                f"sum(conveyor_jobs_running{{{NS}}}) / sum(conveyor_worker_processes{{{NS}}})",
                "percentunit",
                thresholds=steps(GREEN, ("orange", 0.8), ("red", 0.95)),
            ),
            stat(
                "Failed jobs (1h)",
                "Job attempts that ended failed for good in the last hour, all kinds.",
                f'sum(increase(conveyor_jobs_finished_total{{{NS_KIND},status="failed"}}[1h]))',
                "short",
                thresholds=steps(GREEN, ("red", 1)),
            ),
        ],
    ),
    (
        "Alerts",
        [
            Panel(
                "Alerts firing",
                "Conveyor's alerts firing now (deploy/prometheus/conveyor-rules.yml; runbooks"
                " in docs/operate/alerts.md).",
                [(f"count({FIRING}) or vector(0)", "Alerts firing")],
                stat=True,
                thresholds=steps(GREEN, ("red", 1)),
                width=4,
            ),
            Panel(
                "Alerts firing by name",
                "Each firing Conveyor alert over time, by name and severity (Prometheus's"
                " ALERTS series).",
                [(f"sum by (alertname, severity) ({FIRING})", "{{alertname}} {{severity}}")],
                width=20,
            ),
        ],
    ),
    (
        "Throughput",
        [
            Panel(
                "Jobs submitted by kind",
                "Jobs accepted by the API per second (conveyor_jobs_submitted_total).",
                [
                    (
                        f"sum by (kind) (rate(conveyor_jobs_submitted_total{{{NS_KIND}}}{RATE}))",
                        "{{kind}}",
                    )
                ],
                "reqps",
                stacked=True,
            ),
            Panel(
                "Jobs finished by status",
                "Job attempts finished per second: succeeded, failed (for good), retry"
                " (queued again), lost (lease lost).",
                [(f"sum by (status) (rate({FINISHED}{RATE}))", "{{status}}")],
                "reqps",
                stacked=True,
            ),
            Panel(
                "HTTP requests by route",
                "Requests per second by route template and status (http_requests_total);"
                " probes and scrapes left out.",
                [
                    (
                        "sum by (method, route, status) (rate(http_requests_total"
                        f"{{{NS},{NOT_PROBES}}}{RATE}))",
                        "{{method}} {{route}} {{status}}",
                    )
                ],
                "reqps",
            ),
            Panel(
                "Jobs started by kind",
                "Job attempts claimed by a worker per second (conveyor_jobs_started_total).",
                [
                    (
                        f"sum by (kind) (rate(conveyor_jobs_started_total{{{NS_KIND}}}{RATE}))",
                        "{{kind}}",
                    )
                ],
                "reqps",
                stacked=True,
            ),
        ],
    ),
    (
        "Latency",
        [
            Panel(
                "HTTP latency by route (p50 / p95 / p99)",
                "Quantiles of http_request_duration_seconds per route template.",
                quantiles(
                    "http_request_duration_seconds",
                    "le, route",
                    f"{NS},{NOT_PROBES}",
                    (0.5, 0.95, 0.99),
                    "{{route}}",
                ),
                "s",
            ),
            Panel(
                "Job duration by kind (p50 / p95)",
                "Quantiles of conveyor_job_duration_seconds (one attempt: handler and result"
                " write) per kind.",
                quantiles(
                    "conveyor_job_duration_seconds", "le, kind", NS_KIND, (0.5, 0.95), "{{kind}}"
                ),
                "s",
            ),
            Panel(
                "Queue wait (p50 / p95 / p99)",
                "How long job messages waited for a worker, publish (or retry ETA) to claim:"
                " conveyor_job_queue_wait_seconds. Rising wait with a growing queue means:"
                " add workers.",
                quantiles("conveyor_job_queue_wait_seconds", "le", NS_KIND, (0.5, 0.95, 0.99), "-"),
                "s",
            ),
            Panel(
                "Queue wait p95 by kind",
                "95th percentile of conveyor_job_queue_wait_seconds per kind.",
                [
                    (
                        expr,
                        "{{kind}}",
                    )
                    for expr, _ in quantiles(
                        "conveyor_job_queue_wait_seconds", "le, kind", NS_KIND, (0.95,), ""
                    )
                ],
                "s",
            ),
        ],
    ),
    (
        "Capacity",
        [
            Panel(
                "Queue depth",
                "Messages waiting in the broker per queue (Redis LLEN of its list), as the API"
                " sees it at each scrape. Every API replica reports the same lists: max, not sum.",
                [(f"max by (queue) (conveyor_queue_depth{{{NS}}})", "{{queue}}")],
            ),
            Panel(
                "Workers",
                "Worker pods, live prefork processes, busy ones (running a job), and the"
                " worker processes of each worker pool (the queues they serve; API metric).",
                [
                    (f"count(conveyor_worker_processes{{{NS}}})", "worker pods"),
                    (f"sum(conveyor_worker_processes{{{NS}}})", "pool processes"),
                    (f"sum(conveyor_jobs_running{{{NS}}})", "busy processes"),
                    (
                        f"max by (pool) (conveyor_pool_workers{{{NS}}})",
                        "worker processes serving {{pool}}",
                    ),
                ],
            ),
            Panel(
                "Queue age",
                "How old the queue is: the backlog divided by the claim rate (by Little's"
                " law, the wait of a job queued now; no workers = +Inf), and the p99 wait"
                " of the jobs claimed. The ConveyorQueueAgeGrowing alert reads the oldest"
                " queued job's age instead.",
                [
                    (
                        f"sum(max by (queue) (conveyor_queue_depth{{{NS}}}))"
                        f" / sum(rate(conveyor_jobs_started_total{{{NS}}}{RATE}))",
                        "backlog / claim rate",
                    ),
                    (
                        "histogram_quantile(0.99, sum by (le) (rate("
                        f"conveyor_job_queue_wait_seconds_bucket{{{NS}}}{RATE})))",
                        "p99 wait of claimed jobs",
                    ),
                ],
                "s",
                width=24,
            ),
        ],
    ),
    (
        "Failures",
        [
            Panel(
                "Failures by kind",
                "Job attempts per second that failed for good (failed) or lost their lease"
                " (lost), per kind.",
                [
                    (
                        "sum by (kind, status) (rate(conveyor_jobs_finished_total"
                        f'{{{NS_KIND},status=~"failed|lost"}}{RATE}))',
                        "{{kind}} {{status}}",
                    )
                ],
                "reqps",
                stacked=True,
            ),
            Panel(
                "Retries by kind",
                "Job attempts per second that failed transiently and were queued again with"
                " backoff.",
                [
                    (
                        "sum by (kind) (rate(conveyor_jobs_finished_total"
                        f'{{{NS_KIND},status="retry"}}{RATE}))',
                        "{{kind}}",
                    )
                ],
                "reqps",
                stacked=True,
            ),
            Panel(
                "HTTP errors by route",
                "Responses per second with a 5xx status (server errors) and 429 (rate"
                " limited), by route template.",
                [
                    (
                        "sum by (route, status) (rate(http_requests_total"
                        f'{{{NS},status=~"5..|429"}}{RATE}))',
                        "{{route}} {{status}}",
                    )
                ],
                "reqps",
            ),
            Panel(
                "Failure ratio by kind",
                "Share of finished attempts that failed for good, per kind.",
                [
                    (
                        "sum by (kind) (rate(conveyor_jobs_finished_total"
                        f'{{{NS_KIND},status="failed"}}{RATE}))'
                        f" / sum by (kind) (rate({FINISHED}{RATE}))",
                        "{{kind}}",
                    )
                ],
                "percentunit",
            ),
        ],
    ),
]


def variable(name: str, label: str, metric: str) -> g.Template:
    query = f"label_values({metric}, {name})"
    return g.Template(
        name=name,
        label=label,
        query={"query": query, "refId": name},
        dataSource=DATASOURCE,
        includeAll=True,
        multi=True,
        allValue=".*",
        default="$__all",
        refresh=2,
        sort=1,
    )


def layout() -> list[g.Panel]:
    """Rows top to bottom; each row's panels left to right, wrapping at 24 columns."""
    panels: list[g.Panel] = []
    y = 0
    for title, row in ROWS:
        panels.append(
            g.RowPanel(id=len(panels) + 1, title=title, gridPos=g.GridPos(h=1, w=24, x=0, y=y))
        )
        y += 1
        x, line_height = 0, 0
        for panel in row:
            if x + panel.width > 24:
                x, y, line_height = 0, y + line_height, 0
            panels.append(panel.build(len(panels) + 1, x, y))
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return panels


def dashboard() -> g.Dashboard:
    return g.Dashboard(
        uid="conveyor-overview",
        title="Conveyor",
        description="Conveyor's API and workers: throughput, latency, queue depth and age,"
        " worker count, failures by kind, and the alerts firing.",
        tags=["conveyor", "celery", "fastapi"],
        graphTooltip=1,
        schemaVersion=39,
        version=1,
        timezone="browser",
        refresh="10s",
        time=g.Time("now-1h", "now"),
        templating=g.Templating(
            [
                g.Template(
                    name="datasource",
                    label="Data source",
                    query="prometheus",
                    type="datasource",
                ),
                variable("namespace", "Namespace", "http_requests_total"),
                variable("kind", "Job kind", "conveyor_jobs_submitted_total"),
            ]
        ),
        panels=layout(),
    )


def render() -> str:
    data = dashboard().to_json_data()
    return json.dumps(data, cls=DashboardEncoder, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv[:1] == ["--check"]:
        # An optional path checks another copy (the tests check a hand-edited one).
        path = Path(argv[1]) if len(argv) > 1 else OUTPUT_FILE
        if path.read_text() != text:
            print(f"{path} is not what {__file__} generates: run `make dashboard`")
            return 1
        return 0
    OUTPUT_FILE.write_text(text)
    print(f"wrote {OUTPUT_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
