"""`tilt up -- --observability`: Jaeger, Prometheus and Grafana from their
upstream charts, wired to Conveyor and to each other by the values files in
deploy/observability/, each with a port-forward and links in Tilt's UI; and
without the option, none of it. Each contract check of that wiring
(tilt_checks_observability.py) is shown to fail on a deliberate break.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tilt_stubs
from test_tiltfile import deployed, resource
from tilt_checks_deploy import contract_problems
from tilt_read import cmd_text, waits_for
from tilt_stubs import REPO, TiltRun

ON = {"observability": True}
OBS = "deploy/observability/"
# release: (chart, values file, UI port, the links' paths)
STACK = {
    "jaeger": (
        "jaegertracing/jaeger",
        "jaeger-values.yaml",
        16686,
        ["/search?service=conveyor-api"],
    ),
    "prometheus": (
        "prometheus-community/prometheus",
        "prometheus-values.yaml",
        9090,
        ["/targets", "/alerts"],
    ),
    "grafana": ("grafana/grafana", "grafana-values.yaml", 3000, ["/d/conveyor-overview"]),
}


@pytest.fixture(scope="module")
def observed() -> TiltRun:
    return tilt_stubs.evaluate(args=ON)


def config_data(run: TiltRun) -> dict[str, str]:
    return deployed(run, "ConfigMap", "conveyor")["data"]


@pytest.mark.parametrize(
    "args",
    [ON, {**ON, "workers": "3", "keda": True, "flower": True, "loadgen": True}],
    ids=["observability", "everything"],
)
def test_the_contract_holds_with_observability(args: dict) -> None:
    problems = contract_problems(tilt_stubs.evaluate(args=args))
    assert not problems, "\n".join(problems)


def test_it_installs_the_three_upstream_charts_with_the_committed_values(
    observed: TiltRun,
) -> None:
    assert observed.extensions == ["ext://helm_resource"]
    for release, (chart, values, port, paths) in STACK.items():
        r = resource(observed, release)
        assert (r.chart, r.namespace, r.labels) == (chart, "default", ["observability"])
        assert r.flags[:2] == ["--values", OBS + values] and (REPO / OBS / values).is_file()
        assert [(pf.local_port, pf.container_port) for pf in r.port_forwards] == [(port, port)]
        assert r.links == [f"http://localhost:{port}{path}" for path in paths]
        repo = resource(observed, "helm-repo-" + chart.split("/")[0])
        assert cmd_text(repo.cmd).startswith(f"helm repo add {chart.split('/')[0]} https://")
        assert repo.name in waits_for(observed, release)
    # The alert rules go to Prometheus from the repo's one copy.
    flags = resource(observed, "prometheus").flags
    assert flags[2:] == [
        "--set-file",
        "ruleFiles.conveyor-rules\\.yml=deploy/prometheus/conveyor-rules.yml",
    ]


def test_conveyor_exports_to_jaeger_and_is_scraped_and_has_its_dashboard(
    observed: TiltRun,
) -> None:
    [call] = observed.helm_calls
    assert call.values == ["deploy/helm/conveyor/values-dev.yaml", OBS + "conveyor-values.yaml"]
    data = config_data(observed)
    assert data["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
    assert data["OTEL_TRACES_EXPORTER"] == "otlp"
    for name in ("conveyor-api", "conveyor-worker", "conveyor-scheduler"):
        notes = deployed(observed, "Deployment", name)["spec"]["template"]["metadata"]
        assert notes["annotations"]["prometheus.io/scrape"] == "true", name
    board = deployed(observed, "ConfigMap", "conveyor-dashboard")
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert "conveyor-dashboard" + ":configmap" in resource(observed, "conveyor-config").objects


def test_without_the_option_none_of_it_appears() -> None:
    run = tilt_stubs.evaluate()
    assert not run.extensions
    everything = [*run.k8s_resources, *run.local_resources]
    assert not [r.name for r in everything if r.chart or "observability" in r.labels]
    assert not [r.name for r in everything if r.name in STACK or r.name.startswith("helm-repo-")]
    assert [c.values for c in run.helm_calls] == [["deploy/helm/conveyor/values-dev.yaml"]]
    data = config_data(run)
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in data and data["OTEL_TRACES_EXPORTER"] == "none"
    api = deployed(run, "Deployment", "conveyor-api")["spec"]["template"]["metadata"]
    assert "prometheus.io/scrape" not in api["annotations"]
    assert not [o for o in run.k8s_objects if o.name == "conveyor-dashboard"]
    assert not [p for _, p in run.paths if p.startswith(OBS)]


# --- Each check can fail -------------------------------------------------------------------

# (id, text in the Tiltfile, its replacement, the problem expected), all with --observability
TILTFILE_BREAKS = [
    ("missing-values-file", "'jaeger-values.yaml'", "'jaeger.yaml'",
     "missing path: helm_resource(values)('deploy/observability/jaeger.yaml')"),
    ("rules-not-given", "['--set-file', 'ruleFiles.conveyor-rules\\\\.yml=' + OBS_RULES]", "[]",
     "rules: prometheus loads ['/etc/config/conveyor-rules.yml'], but --set-file ruleFiles "
     "gives it nothing"),
    ("rules-from-elsewhere", "OBS_RULES = 'deploy/prometheus/conveyor-rules.yml'",
     "OBS_RULES = 'deploy/prometheus/tests/conveyor-rules.test.yml'",
     "rules: prometheus is given deploy/prometheus/tests/conveyor-rules.test.yml, not the repo's"),
    ("ui-port", "'grafana-values.yaml', [], 3000,", "'grafana-values.yaml', [], 3001,",
     "port-forward: grafana forwards localhost:3001 to container port 3001, but grafana/grafana "
     "serves its UI on 3000"),
    ("port-clash", "OBS_RULES], 9090,", "OBS_RULES], 8000,",
     "port clash: localhost:8000 is forwarded by 'conveyor-api' and 'prometheus'"),
    ("link-to-no-port-forward", "'http://localhost:%d%s' % (ui_port, path)",
     "'http://localhost:%d%s' % (ui_port + 1, path)",
     "link: jaeger links to http://localhost:16687/search?service=conveyor-api, which no "
     "port-forward of it serves"),
    ("no-links", "k8s_resource(release, links=[link(", "k8s_resource(release, links=[] and [link(",
     "link: helm_resource 'jaeger' has no link in Tilt's UI"),
    ("another-namespace", "namespace=k8s_namespace(),", "namespace='observability',",
     "namespace: helm_resource 'jaeger' installs into 'observability', not Conveyor's namespace"),
    ("no-repo-first", "resource_deps=['helm-repo-' + chart.split('/')[0]],", "resource_deps=[],",
     "repo: helm_resource 'jaeger' installs 'jaegertracing/jaeger' without waiting for a "
     "helm_repo 'jaegertracing'"),
    ("wrong-repo-url", "'https://grafana.github.io/helm-charts'", "'https://grafana.example.com'",
     "repo: helm_repo 'helm-repo-grafana' adds ['https://grafana.example.com'], not "
     "https://grafana.github.io/helm-charts"),
    ("repo-clashes-with-release", "resource_name='helm-repo-' + repo,", "",
     "duplicate resource: 'grafana' is defined twice"),
    ("values-edit-does-not-redeploy", "deps=[OBS_VALUES + values] +", "deps=[] +",
     "deps: helm_resource 'jaeger' does not redeploy when deploy/observability/jaeger-values.yaml "
     "changes"),
    ("conveyor-values-left-out", "(['deploy/observability/conveyor-values.yaml'] if OBSERVABILITY "
     "else [])", "[]",
     "otlp: Conveyor exports to nothing (OTEL_EXPORTER_OTLP_ENDPOINT unset), but the jaeger "
     "release's OTLP/HTTP receiver is http://jaeger:4318"),
    ("a-release-missing", "links in OBS_RELEASES:", "links in OBS_RELEASES[:2]:",
     "missing: the observability stack lacks ['grafana/grafana']"),
    ("unknown-extension", "load_dynamic('ext://helm_resource')", "load_dynamic('ext://helm')",
     "evaluation failed"),
]  # fmt: skip

# (id, repo file, text in it, its replacement, the problem expected)
REPO_BREAKS = [
    ("jaeger-service-renamed", OBS + "jaeger-values.yaml", "fullnameOverride: jaeger\n",
     "fullnameOverride: tracing\n", "otlp: Conveyor exports to http://jaeger:4318, but the "
     "jaeger release's OTLP/HTTP receiver is http://tracing:4318"),
    ("grafana-reads-another-prometheus", OBS + "grafana-values.yaml",
     "url: http://prometheus-server\n", "url: http://prometheus\n",
     "datasource: Grafana's prometheus data source is http://prometheus, but the prometheus "
     "release serves it at http://prometheus-server"),
    ("grafana-reads-another-jaeger", OBS + "grafana-values.yaml", "url: http://jaeger:16686\n",
     "url: http://jaeger:4318\n", "datasource: Grafana's jaeger data source is "
     "http://jaeger:4318, but the jaeger release serves it at http://jaeger:16686"),
    ("sidecar-label", OBS + "grafana-values.yaml", 'labelValue: "1"', 'labelValue: "yes"',
     "dashboard: Grafana's sidecar loads ConfigMaps labelled grafana_dashboard=yes"),
    ("no-dashboard", OBS + "conveyor-values.yaml", "grafanaDashboard:\n", "flower:\n",
     "dashboard: Grafana's sidecar loads ConfigMaps labelled grafana_dashboard=1 (enabled: True), "
     "but the Conveyor dashboard's ConfigMap is not deployed"),
    ("not-scraped", OBS + "conveyor-values.yaml", "scrapeAnnotations: true",
     "scrapeAnnotations: false",
     "scrape: Deployment/conveyor-api has no prometheus.io/scrape annotation"),
    ("rules-file-not-loaded", OBS + "prometheus-values.yaml", "- /etc/config/conveyor-rules.yml",
     "- /etc/config/rules.yml", "rules: prometheus loads ['/etc/config/rules.yml'], but "
     "--set-file ruleFiles gives it ['/etc/config/conveyor-rules.yml']"),
]  # fmt: skip


def assert_reported(problems: list[str], expected: str) -> None:
    assert any(expected in p for p in problems), (
        f"expected a problem with:\n  {expected}\ngot:\n  " + "\n  ".join(problems)
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"), [pytest.param(*b[1:], id=b[0]) for b in TILTFILE_BREAKS]
)
def test_a_broken_observability_reference_is_reported(old: str, new: str, expected: str) -> None:
    text = (REPO / "Tiltfile").read_text()
    assert text.count(old) == 1, f"the Tiltfile no longer contains {old!r} exactly once"
    assert_reported(
        contract_problems(tilt_stubs.evaluate(text.replace(old, new), args=ON)), expected
    )


@pytest.mark.parametrize(
    ("name", "old", "new", "expected"), [pytest.param(*b[1:], id=b[0]) for b in REPO_BREAKS]
)
def test_a_broken_values_file_is_reported(
    tmp_path: Path, name: str, old: str, new: str, expected: str
) -> None:
    """The repo seen through symlinks, but for one file changed."""
    parts = Path(name).parts
    for depth in range(len(parts)):  # real directories down to the file, the rest linked
        here, part = Path(*parts[:depth]), parts[depth]
        (tmp_path / here).mkdir(exist_ok=True)
        for entry in (REPO / here).iterdir():
            if entry.name != part:
                (tmp_path / here / entry.name).symlink_to(entry)
    text = (REPO / name).read_text()
    assert text.count(old) == 1, f"{name} no longer contains {old!r} exactly once"
    (tmp_path / name).write_text(text.replace(old, new))
    assert_reported(contract_problems(tilt_stubs.evaluate(root=tmp_path, args=ON)), expected)
