"""The Helm chart, proven without a cluster: `helm lint --strict`, every
documented option combination rendered and validated against Kubernetes 1.35's
schemas, the values schema's errors, the demo manifests, Service/Ingress/metrics
and the optional components. Needs `helm` on PATH and kubernetes-validate
(see conftest.py); the other test_helm_*.py files assert the workloads.
"""

from __future__ import annotations

import subprocess
from urllib.parse import urlsplit

import pytest
import yaml
from helm_render import (
    CHART,
    COMBOS,
    REPO,
    component_of,
    containers,
    find,
    find_all,
    helm,
    pod_spec,
    render,
    render_failure,
    rendered,
    resolved_env,
    workloads,
)

VALUES_FILES = ["values.yaml", "values-dev.yaml", "values-demo.yaml", "values-prod.yaml"]

# CRDs that kubernetes-validate has no schema for; checked by assertions instead.
CRD_API_VERSIONS = {
    "ScaledObject": "keda.sh/v1alpha1",
    "TriggerAuthentication": "keda.sh/v1alpha1",
    "ServiceMonitor": "monitoring.coreos.com/v1",
}


def kubernetes_validate_1_35(command: list[str], *files: str) -> None:
    """Fail with kubernetes-validate's report unless every object passes --strict."""
    proc = subprocess.run(
        [*command, "-k", "1.35.0", "--strict", "--quiet", *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    # An unknown apiVersion/kind is only a warning there: make it an error.
    assert "Couldn't find schema" not in report, report


# --- lint, render, validate ---------------------------------------------------


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_helm_lint_strict(values_file):
    out = helm("lint", "--strict", str(CHART), "-f", str(CHART / values_file))
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("combo", COMBOS)
def test_renders_valid_kubernetes_1_35(kubernetes_validate, combo, tmp_path):
    manifests = rendered(combo)
    # KEDA's and prometheus-operator's CRDs are unknown to kubernetes-validate:
    # those objects are checked by the assertions here and in the other modules.
    plain = [m for m in manifests if m["kind"] not in CRD_API_VERSIONS]
    for crd in (m for m in manifests if m["kind"] in CRD_API_VERSIONS):
        assert crd["apiVersion"] == CRD_API_VERSIONS[crd["kind"]]
        assert crd["metadata"]["name"] and crd["spec"]
    out = tmp_path / f"{combo}.yaml"
    out.write_text(yaml.safe_dump_all(plain))
    kubernetes_validate_1_35(kubernetes_validate, str(out))


def test_demo_manifests_are_valid_and_match_values_demo(kubernetes_validate):
    dev = REPO / "deploy" / "dev"
    kubernetes_validate_1_35(
        kubernetes_validate, str(dev / "postgres.yaml"), str(dev / "redis.yaml")
    )
    docs = [
        d
        for f in ("postgres.yaml", "redis.yaml")
        for d in yaml.safe_load_all((dev / f).read_text())
    ]
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    assert set(services) == {"conveyor-postgres", "conveyor-redis"}
    images = {
        c["image"] for d in docs if d["kind"] == "Deployment" for c in pod_spec(d)["containers"]
    }
    assert images == {"postgres:16", "redis:7"}

    demo = yaml.safe_load((CHART / "values-demo.yaml").read_text())["secrets"]
    db, redis = urlsplit(demo["databaseUrl"]), urlsplit(demo["redisUrl"])
    assert (db.hostname, db.port) == (
        "conveyor-postgres",
        services["conveyor-postgres"]["spec"]["ports"][0]["port"],
    )
    assert (redis.hostname, redis.port) == (
        "conveyor-redis",
        services["conveyor-redis"]["spec"]["ports"][0]["port"],
    )
    pg_env = {
        e["name"]: e["value"]
        for d in docs
        if d["metadata"]["name"] == "conveyor-postgres" and d["kind"] == "Deployment"
        for e in pod_spec(d)["containers"][0]["env"]
    }
    assert (db.username, db.password, db.path) == (
        pg_env["POSTGRES_USER"],
        pg_env["POSTGRES_PASSWORD"],
        "/" + pg_env["POSTGRES_DB"],
    )
    # The chart never names an object like the demo services.
    assert not {m["metadata"]["name"] for m in rendered("demo")} & set(services)


def test_images_follow_the_shared_settings():
    manifests = render(
        [], {"image.tag": "1.2.3", "image.pullPolicy": "Always", "image.pullSecrets": ["regcred"]}
    )
    for workload in workloads(manifests):
        repo = "conveyor-api" if component_of(workload) == "api" else "conveyor-worker"
        assert pod_spec(workload)["imagePullSecrets"] == [{"name": "regcred"}]
        for c in containers(workload):
            assert (c["image"], c["imagePullPolicy"]) == (f"{repo}:1.2.3", "Always")


# --- Service, Ingress, metrics, optional components -----------------------------


def test_service_and_ingress_reach_the_api():
    manifests = rendered("all-optional")
    service = find(manifests, "Service", "api")
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "api"
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    backend = find(manifests, "Ingress", "api")["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    assert backend["service"]["name"] == service["metadata"]["name"]
    assert not find_all(rendered("default"), "Ingress")


def test_metrics_annotations_and_service_monitors():
    manifests = rendered("all-optional")
    for component, port in (("api", "8000"), ("worker", "9808"), ("scheduler", "9808")):
        annotations = find(manifests, "Deployment", component)["spec"]["template"]["metadata"][
            "annotations"
        ]
        assert (annotations["prometheus.io/scrape"], annotations["prometheus.io/port"]) == (
            "true",
            port,
        )
        monitor = find(manifests, "ServiceMonitor", component)
        assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    for component in ("worker", "scheduler"):
        metrics_service = find(manifests, "Service", component)
        assert metrics_service["spec"]["ports"][0]["targetPort"] == "metrics"
        [container] = pod_spec(find(manifests, "Deployment", component))["containers"]
        assert {"name": "metrics", "containerPort": 9808, "protocol": "TCP"} in container["ports"]
    default_api = find(rendered("default"), "Deployment", "api")
    assert "prometheus.io/scrape" not in default_api["spec"]["template"]["metadata"]["annotations"]


def test_optional_components():
    assert not {"flower", "loadgen"} & {component_of(m) for m in rendered("default")}
    manifests = rendered("all-optional")
    [flower] = pod_spec(find(manifests, "Deployment", "flower"))["containers"]
    assert flower["command"] == ["python", "-m", "conveyor.worker.flower"]
    assert {"name": "FLOWER_PORT", "value": "5555"} in flower["env"]
    [loadgen] = pod_spec(find(manifests, "Deployment", "loadgen"))["containers"]
    assert loadgen["command"] == ["locust", "-f", "scripts/loadtest/locustfile.py"]
    assert loadgen["image"].startswith("conveyor-loadgen:")
    env = resolved_env(manifests, find(manifests, "Deployment", "loadgen"))
    assert env == {"CONVEYOR_URL": "http://conveyor-api:80", "CONVEYOR_API_KEY": "test-key"}
    assert "loadgen.enabled needs loadgen.apiKey" in render_failure({"loadgen.enabled": True})


def test_topology_spread_gets_the_component_selector():
    [constraint] = pod_spec(find(rendered("all-optional"), "Deployment", "api"))[
        "topologySpreadConstraints"
    ]
    assert constraint["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "api"


# --- values schema and NOTES ------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"replicaCount": 2}, ["additional properties 'replicaCount' not allowed"]),
        (
            {"api.autoscalng": {"enabled": True}},
            ["/api", "additional properties 'autoscalng' not allowed"],
        ),
        ({"api.replicas": "two"}, ["/api/replicas", "got string, want integer"]),
        ({"migrations.mode": "sometimes"}, ["/migrations/mode"]),
        ({"secrets.databaseUrl": "mysql://db/x"}, ["/secrets/databaseUrl"]),
    ],
)
def test_schema_rejects_unknown_keys_and_wrong_types(values, expected):
    message = render_failure(values)
    assert "values don't meet the specifications of the schema" in message
    for fragment in expected:
        assert fragment in message


def test_notes_tell_how_to_reach_the_api_and_create_a_key():
    out = helm(
        "install",
        "conveyor",
        str(CHART),
        "--dry-run=client",
        "--namespace",
        "conveyor",
        "-f",
        str(CHART / "values-demo.yaml"),
    )
    notes = out[out.index("NOTES:") :]
    assert "port-forward svc/conveyor-api" in notes
    assert "exec deploy/conveyor-api -- python scripts/create_api_key.py --tenant NAME" in notes
    assert "WARNING" not in notes
    assert "WARNING: secrets.databaseUrl is empty" in helm(
        "install", "conveyor", str(CHART), "--dry-run=client"
    )


def test_long_release_names_still_give_valid_object_names():
    release = "a-release-name-as-long-as-helm-allows-it-53-character"
    out = helm(
        "template",
        release,
        str(CHART),
        "--set-json",
        'secrets={"redisUrl": "redis://r:6379/0"}',
        "--set-json",
        "metrics.serviceMonitor.enabled=true",
        "--set-json",
        "worker.keda.enabled=true",
    )
    names = [d["metadata"]["name"] for d in yaml.safe_load_all(out) if d]
    assert max(len(n) for n in names) <= 63, max(names, key=len)
