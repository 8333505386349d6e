"""The observability stack's values files (deploy/observability/) and the
commands in docs/operate/observability.md that install it on a cluster.

No upstream chart can be pulled here, so these hold the files to each other,
to the repo, and to the Conveyor chart rendered with conveyor-values.yaml: it
exports its traces to the Jaeger Service, its pods carry the annotations the
Prometheus scrape job keeps, and its dashboard ConfigMap carries the label
Grafana's sidecar loads. tests/observability runs the scrape job's relabelling
in a real Prometheus.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import tilt_stubs
import yaml
from helm_render import CHART, REPO, find, render
from tilt_checks_observability import RULES_DIR

OBS = REPO / "deploy" / "observability"
DOC = REPO / "docs" / "operate" / "observability.md"
RULES = CHART / "prometheus" / "rules.yml"
DASHBOARD = CHART / "dashboards" / "conveyor-dashboard.json"
UPSTREAM = {"jaegertracing/jaeger", "prometheus-community/prometheus", "grafana/grafana"}


def values(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((OBS / name).read_text())
    assert isinstance(loaded, dict), name
    return loaded


def doc_commands() -> list[list[str]]:
    """The `helm upgrade --install` lines of the doc's <!-- observability-stack --> block."""
    block = re.search(r"<!-- observability-stack -->\s*```bash\n(.*?)```", DOC.read_text(), re.S)
    assert block, f"{DOC} has no <!-- observability-stack --> bash block"
    return [
        shlex.split(line)
        for line in block.group(1).splitlines()
        if line.startswith("helm upgrade --install ")
    ]


def flag_values(argv: list[str], *names: str) -> list[str]:
    return [b for a, b in itertools.pairwise(argv) if a in names]


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    """The chart as the doc's last command installs it (plus a database URL to render)."""
    return render(
        [str(OBS / "conveyor-values.yaml")],
        {
            "secrets.databaseUrl": "postgresql://u:p@db:5432/c",
            "secrets.redisUrl": "redis://r:6379/0",
        },
    )


def test_every_values_file_parses() -> None:
    names = sorted(p.name for p in OBS.glob("*.yaml"))
    assert names == [
        "conveyor-values.yaml",
        "grafana-values.yaml",
        "jaeger-values.yaml",
        "prometheus-values.yaml",
    ]
    for name in names:
        values(name)


def test_the_chart_with_the_observability_values_exports_to_jaeger(rendered: list[dict]) -> None:
    [data] = [
        m["data"]
        for m in rendered
        if m["kind"] == "ConfigMap" and "OTEL_TRACES_EXPORTER" in (m.get("data") or {})
    ]
    jaeger = values("jaeger-values.yaml")["fullnameOverride"]
    assert data["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://{jaeger}:4318"
    assert data["OTEL_TRACES_EXPORTER"] == "otlp"
    assert data["OTEL_TRACES_SAMPLER"] == "parentbased_always_on"


@pytest.mark.parametrize("component", ["api", "worker", "scheduler"])
def test_the_pods_carry_the_annotations_the_scrape_job_keeps(
    rendered: list[dict], component: str
) -> None:
    deployment = find(rendered, "Deployment", component)
    template = deployment["spec"]["template"]
    notes, labels = template["metadata"]["annotations"], template["metadata"]["labels"]
    # prometheus-values.yaml's "conveyor" job: part-of conveyor and scrape true, kept.
    keep = values("prometheus-values.yaml")["serverFiles"]["prometheus.yml"]["scrape_configs"][1]
    first = keep["relabel_configs"][0]
    assert first["action"] == "keep" and first["regex"] == "conveyor;true"
    assert (labels["app.kubernetes.io/part-of"], notes["prometheus.io/scrape"]) == (
        "conveyor",
        "true",
    )
    ports = [p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])]
    assert int(notes["prometheus.io/port"]) in ports
    assert notes["prometheus.io/path"] == "/metrics"
    # The pod's NetworkPolicy lets Prometheus (any source here) reach that port.
    policy = find(rendered, "NetworkPolicy", component)
    opened = [p["port"] for rule in policy["spec"]["ingress"] for p in rule.get("ports", [])]
    assert int(notes["prometheus.io/port"]) in opened
    assert all(not rule.get("from") for rule in policy["spec"]["ingress"])


def test_grafana_loads_the_charts_dashboard_and_reads_both_data_sources(
    rendered: list[dict],
) -> None:
    grafana = values("grafana-values.yaml")
    sidecar = grafana["sidecar"]["dashboards"]
    board = find(rendered, "ConfigMap", "dashboard")
    assert sidecar["enabled"] is True
    assert board["metadata"]["labels"][sidecar["label"]] == sidecar["labelValue"]
    assert json.loads(board["data"]["conveyor-dashboard.json"])["uid"] == "conveyor-overview"
    sources = {d["type"]: d for d in grafana["datasources"]["datasources.yaml"]["datasources"]}
    server = values("prometheus-values.yaml")["server"]["fullnameOverride"]
    jaeger = values("jaeger-values.yaml")["fullnameOverride"]
    assert sources["prometheus"]["url"] == f"http://{server}"
    assert sources["prometheus"]["isDefault"] is True
    assert sources["jaeger"]["url"] == f"http://{jaeger}:16686"
    # The dashboard asks for a Prometheus data source; Grafana's default is one.
    variables = json.loads(DASHBOARD.read_text())["templating"]["list"]
    assert [v["query"] for v in variables if v["type"] == "datasource"] == ["prometheus"]


def test_the_doc_installs_each_upstream_chart_in_one_line_with_the_committed_files() -> None:
    commands = doc_commands()
    charts = {argv[4]: argv for argv in commands}
    assert set(charts) == UPSTREAM | {"deploy/helm/conveyor"}
    assert len(commands) == len(charts), "one line per chart"
    for argv in commands:
        files = flag_values(argv, "-f", "--values") + [
            v.split("=", 1)[1] for v in flag_values(argv, "--set-file")
        ]
        assert files, argv
        assert all((REPO / f).is_file() for f in files), argv
        assert flag_values(argv, "-n", "--namespace") == ["conveyor"], argv
    assert flag_values(charts["deploy/helm/conveyor"], "-f") == [
        "deploy/observability/conveyor-values.yaml"
    ]
    assert "--reuse-values" in charts["deploy/helm/conveyor"]


def test_the_doc_and_the_tiltfile_install_the_same_way() -> None:
    run = tilt_stubs.evaluate(args={"observability": True})
    tilt = {r.chart: (r.name, r.flags) for r in run.k8s_resources if r.chart}
    doc = {argv[4]: argv for argv in doc_commands() if argv[4] in UPSTREAM}
    for chart, argv in doc.items():
        name, flags = tilt[chart]
        assert argv[3] == name, chart
        for flag in ("-f", "--set-file"):
            tilt_flag = "--values" if flag == "-f" else flag
            assert flag_values(argv, flag) == flag_values(flags, tilt_flag), chart


def test_prometheus_loads_the_repos_rules_from_the_file_the_install_gives_it() -> None:
    [argv] = [a for a in doc_commands() if a[4] == "prometheus-community/prometheus"]
    [given] = flag_values(argv, "--set-file")
    key, path = given.split("=", 1)
    assert key.startswith("ruleFiles.") and "\\." in key, "a dot in a --set-file key is escaped"
    assert (REPO / path).resolve() == RULES.resolve()
    loaded = values("prometheus-values.yaml")["serverFiles"]["prometheus.yml"]["rule_files"]
    assert loaded == [RULES_DIR + key.removeprefix("ruleFiles.").replace("\\.", ".")]


def test_the_scrape_job_names_jobs_as_the_alert_rules_expect() -> None:
    config = values("prometheus-values.yaml")["serverFiles"]["prometheus.yml"]
    [job] = [s for s in config["scrape_configs"] if s["job_name"] == "conveyor"]
    named = [r for r in job["relabel_configs"] if r.get("target_label") == "job"]
    assert [r["replacement"] for r in named] == ["conveyor-$1"]
    # ConveyorTargetDown watches up{job=~".*conveyor.*"}; the dashboard filters on namespace.
    assert 'up{job=~".*conveyor.*"}' in RULES.read_text()
    assert {r.get("target_label") for r in job["relabel_configs"]} >= {"namespace", "job"}


def test_the_values_files_are_documented() -> None:
    text = DOC.read_text()
    for name in sorted(p.name for p in Path(OBS).glob("*.yaml")):
        assert f"`{name}`" in text, name
