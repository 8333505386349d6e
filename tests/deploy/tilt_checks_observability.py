"""The Tiltfile contract, `--observability` side: Jaeger, Prometheus and Grafana
from their upstream charts (helm_resource), wired to each other and to Conveyor
through the values files in deploy/observability/.

No upstream chart can be fetched here, so the check holds each release to what
its chart is known to serve (the UI port) and to what its values file says
(Service names, data sources, rule files, the dashboard sidecar's label), and
the Conveyor chart, as Tilt renders it, to the other side of each wire.
"""

from __future__ import annotations

import itertools
from typing import Any
from urllib.parse import urlsplit

import yaml
from tilt_read import chart_objects, cmd_text
from tilt_stubs import Resource, TiltRun

# The upstream charts: their repository and the container port of their UI.
UPSTREAM = {
    "jaegertracing/jaeger": ("https://jaegertracing.github.io/helm-charts", 16686),
    "prometheus-community/prometheus": ("https://prometheus-community.github.io/helm-charts", 9090),
    "grafana/grafana": ("https://grafana.github.io/helm-charts", 3000),
}
OTLP_HTTP_PORT = 4318  # Jaeger's OTLP/HTTP receiver
RULES_DIR = "/etc/config/"  # where the prometheus chart mounts its ConfigMap (ruleFiles too)
SCRAPED = ("conveyor-api", "conveyor-worker", "conveyor-scheduler")


def releases(run: TiltRun) -> dict[str, Resource]:
    """helm_resource releases by chart."""
    return {r.chart: r for r in run.k8s_resources if r.chart}


def values_file(run: TiltRun, release: Resource) -> dict[str, Any]:
    """The release's --values file, parsed ({} when missing: check_paths reports that)."""
    flags = release.flags
    for flag, value in itertools.pairwise(flags):
        if flag in ("--values", "-f") and (run.root / value).is_file():
            return yaml.safe_load((run.root / value).read_text()) or {}
    return {}


def set_files(release: Resource) -> dict[str, str]:
    """--set-file KEY=PATH flags, the key's escaped dots unescaped."""
    flags = release.flags
    pairs = [v.split("=", 1) for f, v in itertools.pairwise(flags) if f == "--set-file"]
    return {key.replace("\\.", "."): path for key, path in pairs}


def check_release(run: TiltRun, r: Resource) -> list[str]:
    where = f"helm_resource {r.name!r}"
    problems = []
    if r.chart not in UPSTREAM:
        return [f"chart: {where} installs {r.chart!r}, not an upstream chart the contract knows"]
    url, ui_port = UPSTREAM[r.chart]
    repo = r.chart.split("/")[0]
    adders = [
        lr.name for lr in run.local_resources if f"helm repo add {repo} " in cmd_text(lr.cmd) + " "
    ]
    if not any(a in r.resource_deps for a in adders):
        problems.append(
            f"repo: {where} installs {r.chart!r} without waiting for a helm_repo {repo!r}"
        )
    for lr in run.local_resources:
        words = cmd_text(lr.cmd).split()
        if words[:4] == ["helm", "repo", "add", repo] and words[4:5] != [url]:
            problems.append(f"repo: helm_repo {lr.name!r} adds {words[4:5]}, not {url}")
    if r.namespace != "default":  # k8s_namespace() in the stubs: Conveyor's namespace
        problems.append(
            f"namespace: {where} installs into {r.namespace!r}, not Conveyor's namespace "
            "'default' (the values files name the Services without a namespace)"
        )
    watched = {
        v for f, v in zip(r.flags, r.flags[1:], strict=False) if f in ("--values", "-f")
    } | set(set_files(r).values())
    problems += [
        f"deps: {where} does not redeploy when {path} changes"
        for path in sorted(watched - set(r.deps))
    ]
    forwarded = {pf.local_port for pf in r.port_forwards}
    for pf in r.port_forwards:
        if (pf.container_port or pf.local_port) != ui_port:
            problems.append(
                f"port-forward: {r.name} forwards localhost:{pf.local_port} to container port "
                f"{pf.container_port or pf.local_port}, but {r.chart} serves its UI on {ui_port}"
            )
    if not r.port_forwards:
        problems.append(f"port-forward: {where} forwards no port to its UI ({ui_port})")
    for link in r.links:
        parts = urlsplit(link)
        if parts.hostname != "localhost" or parts.port not in forwarded:
            problems.append(f"link: {r.name} links to {link}, which no port-forward of it serves")
    if not r.links:
        problems.append(f"link: {where} has no link in Tilt's UI")
    return problems


def _config_map_data(run: TiltRun) -> dict[str, str]:
    found = [
        o.obj.get("data") or {}
        for o in run.k8s_objects
        if o.kind == "ConfigMap" and "OTEL_TRACES_EXPORTER" in (o.obj.get("data") or {})
    ]
    return found[0] if found else {}


def check_wiring(run: TiltRun, found: dict[str, Resource]) -> list[str]:
    """Conveyor -> Jaeger; Prometheus -> Conveyor, and its rules; Grafana -> both, the dashboard."""
    problems = []
    jaeger = values_file(run, found["jaegertracing/jaeger"]).get("fullnameOverride", "jaeger")
    prometheus = values_file(run, found["prometheus-community/prometheus"])
    server = (prometheus.get("server") or {}).get("fullnameOverride", "prometheus-server")
    grafana = values_file(run, found["grafana/grafana"])
    # Conveyor exports its traces to Jaeger's OTLP/HTTP receiver.
    endpoint = _config_map_data(run).get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if endpoint != f"http://{jaeger}:{OTLP_HTTP_PORT}":
        problems.append(
            f"otlp: Conveyor exports to {endpoint or 'nothing (OTEL_EXPORTER_OTLP_ENDPOINT unset)'}"
            f", but the jaeger release's OTLP/HTTP receiver is http://{jaeger}:{OTLP_HTTP_PORT}"
        )
    # Prometheus keeps the pods with scrape annotations and loads the rules it is given.
    for obj in chart_objects(run):
        name = obj["metadata"]["name"]
        if obj["kind"] == "Deployment" and name in SCRAPED:
            deployed = [o.obj for o in run.k8s_objects if o.kind == "Deployment" and o.name == name]
            template = deployed[0]["spec"]["template"] if deployed else {}
            notes = (template.get("metadata") or {}).get("annotations") or {}
            if notes.get("prometheus.io/scrape") != "true":
                problems.append(f"scrape: Deployment/{name} has no prometheus.io/scrape annotation")
    loaded = (prometheus.get("serverFiles") or {}).get("prometheus.yml", {}).get("rule_files", [])
    given = set_files(found["prometheus-community/prometheus"])
    rule_files = {RULES_DIR + k.removeprefix("ruleFiles."): v for k, v in given.items()}
    if not any(path in rule_files for path in loaded):
        problems.append(
            f"rules: prometheus loads {loaded}, but --set-file ruleFiles gives it "
            f"{sorted(rule_files) or 'nothing'}"
        )
    repo_rules = (run.root / "deploy/helm/conveyor/prometheus/rules.yml").resolve()
    problems += [
        f"rules: prometheus is given {src}, not the repo's alert rules"
        for src in rule_files.values()
        if (run.root / src).resolve() != repo_rules
    ]
    # Grafana reads both, and loads the dashboard ConfigMap by its label.
    sources = {
        d.get("type"): d.get("url")
        for d in (grafana.get("datasources") or {})
        .get("datasources.yaml", {})
        .get("datasources", [])
    }
    for kind, url in (("prometheus", f"http://{server}"), ("jaeger", f"http://{jaeger}:16686")):
        if sources.get(kind) != url:
            problems.append(
                f"datasource: Grafana's {kind} data source is {sources.get(kind)}, but the "
                f"{kind} release serves it at {url}"
            )
    sidecar = (grafana.get("sidecar") or {}).get("dashboards") or {}
    label, value = sidecar.get("label"), str(sidecar.get("labelValue", ""))
    boards = [
        o
        for o in run.k8s_objects
        if o.kind == "ConfigMap" and "conveyor-dashboard.json" in (o.obj.get("data") or {})
    ]
    labels = (boards[0].obj["metadata"].get("labels") or {}) if boards else {}
    if not sidecar.get("enabled") or label not in labels or value not in ("", labels[label]):
        problems.append(
            f"dashboard: Grafana's sidecar loads ConfigMaps labelled {label}={value or '*'}"
            f" (enabled: {sidecar.get('enabled')}), but the Conveyor dashboard's "
            f"{'labels are ' + str(labels) if boards else 'ConfigMap is not deployed'}"
        )
    return problems


def check_observability(run: TiltRun) -> list[str]:
    found = releases(run)
    if not found:
        return []
    problems = [p for r in found.values() for p in check_release(run, r)]
    if missing := sorted(set(UPSTREAM) - set(found)):
        return [*problems, f"missing: the observability stack lacks {missing}"]
    return problems + check_wiring(run, found)
