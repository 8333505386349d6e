"""The Grafana dashboard: a valid dashboard over the metrics the code exports,
provisioned by the chart as a ConfigMap that Grafana's sidecar picks up.
Needs `helm` on PATH and kubernetes-validate (see conftest.py)."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml
from helm_render import CHART, REPO, find, find_all, helm, render, render_failure

DASHBOARD = CHART / "dashboards" / "conveyor-dashboard.json"
# Where people look for it outside the chart: a link to the chart's copy.
DEPLOY_COPY = REPO / "deploy" / "grafana" / "conveyor-dashboard.json"
METRIC_SOURCES = [
    REPO / "services" / "api" / "src" / "conveyor" / "api" / "metrics.py",
    REPO / "services" / "worker" / "src" / "conveyor" / "worker" / "metrics.py",
]
# Histogram and counter series names built from a metric's base name.
SUFFIXES = ("_bucket", "_count", "_sum")


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(board: dict) -> list[dict]:
    return [p for p in board["panels"] if p["type"] != "row"]


def exprs(board: dict) -> list[str]:
    return [t["expr"] for p in panels(board) for t in p["targets"]]


def test_deploy_grafana_is_the_charts_dashboard():
    assert DEPLOY_COPY.is_symlink()
    assert DEPLOY_COPY.read_text() == DASHBOARD.read_text()


def test_dashboard_is_well_formed():
    board = dashboard()
    assert board["uid"] and board["title"] == "Conveyor"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels(board):
        assert panel["targets"], panel["title"]
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys()
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        # No data source UID baked in: the dashboard's own variable picks one.
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"


def test_dashboard_shows_what_the_issue_asks_for():
    titles = " | ".join(p["title"] for p in panels(dashboard())).lower()
    for topic in ("jobs finished", "latency", "queue depth", "worker", "failures by kind"):
        assert topic in titles, topic
    queries = " ".join(exprs(dashboard()))
    assert (
        "histogram_quantile(0.95, sum by (le, route) (rate(http_request_duration_seconds_bucket"
        in queries
    )
    assert "conveyor_jobs_finished_total" in queries and 'status=~"failed|lost"' in queries
    assert "max by (queue) (conveyor_queue_depth" in queries  # every API replica reports it


def test_dashboard_queries_only_metrics_the_code_exports():
    source = "\n".join(path.read_text() for path in METRIC_SOURCES)
    exported = set(re.findall(r'"((?:conveyor|http)_[a-z_]+)"', source))
    assert {"conveyor_jobs_finished_total", "conveyor_queue_depth"} <= exported
    used = set()
    for expr in exprs(dashboard()):
        # Every selector names its metric and filters on the dashboard's variables.
        for name, matchers in re.findall(r"\b([a-z_]+)\{([^}]*)\}", expr):
            assert 'namespace=~"$namespace"' in matchers, expr
            base = next((name[: -len(s)] for s in SUFFIXES if name.endswith(s)), name)
            used.add(base)
    assert used, "no metric names found in the dashboard"
    assert used <= exported, used - exported


def test_off_by_default():
    assert not [
        m for m in find_all(render(), "ConfigMap") if m["metadata"]["name"].endswith("-dashboard")
    ]


def test_configmap_carries_the_dashboard_for_the_sidecar(kubernetes_validate, tmp_path):
    manifests = render([], {"grafanaDashboard.enabled": True})
    config_map = find(manifests, "ConfigMap", "dashboard")
    assert config_map["metadata"]["name"] == "conveyor-dashboard"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert "namespace" not in config_map["metadata"]  # the release's
    [(key, text)] = config_map["data"].items()
    assert key.endswith(".json")
    assert json.loads(text) == dashboard()
    out = tmp_path / "dashboard.yaml"
    out.write_text(yaml.safe_dump(config_map))
    proc = subprocess.run(
        [*kubernetes_validate, "-k", "1.35.0", "--strict", "--quiet", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_sidecar_label_folder_and_namespace_are_settable():
    manifests = render(
        [],
        {
            "grafanaDashboard.enabled": True,
            "grafanaDashboard.labels": {"dashboards": "conveyor"},
            "grafanaDashboard.annotations": {"grafana_folder": "Conveyor"},
            "grafanaDashboard.namespace": "monitoring",
        },
    )
    meta = find(manifests, "ConfigMap", "dashboard")["metadata"]
    # Helm merges maps: the default label stays unless set to null.
    assert (meta["labels"]["dashboards"], meta["labels"]["grafana_dashboard"]) == ("conveyor", "1")
    assert meta["annotations"] == {"grafana_folder": "Conveyor"}
    assert meta["namespace"] == "monitoring"
    only_ours = render(
        [],
        {
            "grafanaDashboard.enabled": True,
            "grafanaDashboard.labels": {"grafana_dashboard": None, "dashboards": "conveyor"},
        },
    )
    labels = find(only_ours, "ConfigMap", "dashboard")["metadata"]["labels"]
    assert "grafana_dashboard" not in labels and labels["dashboards"] == "conveyor"


def test_lint_strict_with_the_dashboard():
    out = helm("lint", "--strict", str(CHART), "--set", "grafanaDashboard.enabled=true")
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"grafanaDashboard.enabled": "yes"}, "grafanaDashboard"),
        ({"grafanaDashboard.folder": "x"}, "grafanaDashboard"),
        ({"grafanaDashboard.labels": {"grafana_dashboard": 1}}, "grafanaDashboard"),
    ],
)
def test_schema_rejects_bad_dashboard_values(values, expected):
    assert expected in render_failure(values)
