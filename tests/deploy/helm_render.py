"""Render the Conveyor Helm chart and pick manifests out of the result.

Used by the chart tests and by anything else that needs the rendered objects
(e.g. a contract test that runs the rendered commands locally):

    manifests = render(["values-demo.yaml"], {"worker.replicas": 3})
    api = find(manifests, "Deployment", "api")
    env = resolved_env(manifests, api)          # Secret and ConfigMap values filled in

`helm` must be on PATH (`make install` puts it in .venv/bin, which `make test` puts first).
"""

from __future__ import annotations

import base64
import functools
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "conveyor"
RELEASE = "conveyor"
NAMESPACE = "conveyor"
COMPONENT = "app.kubernetes.io/component"


class HelmError(RuntimeError):
    """`helm` exited non-zero; the message is its stderr."""


def helm_binary() -> str:
    helm = shutil.which("helm")
    if helm is None:
        raise RuntimeError(
            "helm is not on PATH; the chart tests need it. "
            "Run `make install` (it puts helm in .venv/bin), then `make test`."
        )
    return helm


def _value_args(values_files: list[str], set_values: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for name in values_files:
        path = Path(name)
        args += ["-f", str(path if path.is_absolute() else CHART / path)]
    for key, value in set_values.items():
        # --set-json keeps types: 3 stays an int, "3" a string, lists stay lists.
        args += ["--set-json", f"{key}={json.dumps(value)}"]
    return args


def helm(*args: str) -> str:
    """Run helm and return stdout; raise HelmError with stderr on failure."""
    proc = subprocess.run([helm_binary(), *args], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise HelmError(proc.stderr.strip() or proc.stdout.strip())
    return proc.stdout


def template(values_files: list[str] = [], set_values: dict[str, Any] = {}) -> str:  # noqa: B006
    """`helm template` output as text (hooks included)."""
    return helm(
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        *_value_args(values_files, set_values),
    )


def render(values_files: list[str] = [], set_values: dict[str, Any] = {}) -> list[dict]:  # noqa: B006
    """The chart's manifests, parsed. values_files are relative to the chart
    directory unless absolute; set_values maps dotted keys to values."""
    return [doc for doc in yaml.safe_load_all(template(values_files, set_values)) if doc]


def component_of(manifest: dict) -> str | None:
    return manifest.get("metadata", {}).get("labels", {}).get(COMPONENT)


def find_all(manifests: list[dict], kind: str, component: str | None = None) -> list[dict]:
    """Every manifest of this kind (and component label, when given)."""
    return [
        m
        for m in manifests
        if m["kind"] == kind and (component is None or component_of(m) == component)
    ]


def find(manifests: list[dict], kind: str, component: str | None = None) -> dict:
    """The one manifest of this kind and component; fails if there are none or several."""
    found = find_all(manifests, kind, component)
    if len(found) != 1:
        names = [m["metadata"]["name"] for m in found]
        raise LookupError(f"expected one {kind} for component {component!r}, found {names}")
    return found[0]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def containers(workload: dict, init: bool = True) -> list[dict]:
    spec = pod_spec(workload)
    return (spec.get("initContainers", []) if init else []) + spec["containers"]


def resolved_env(
    manifests: list[dict],
    workload: dict,
    container: str | None = None,
    fields: dict[str, str] | None = None,
) -> dict[str, str]:
    """A container's environment as the kubelet would build it: envFrom
    ConfigMaps/Secrets, then env (value, secretKeyRef, configMapKeyRef, fieldRef),
    with $(VAR) references expanded. Objects the chart does not render (an
    existingSecret) are missing, and so are their keys. `fields` gives fieldRef
    values by fieldPath (default: placeholders)."""
    spec = next(c for c in containers(workload) if container is None or c["name"] == container)
    fields = {
        "metadata.name": "pod",
        "metadata.namespace": NAMESPACE,
        "spec.nodeName": "node",
        **(fields or {}),
    }

    def data(kind: str, name: str) -> dict[str, str]:
        for m in manifests:
            if m["kind"] == kind and m["metadata"]["name"] == name:
                if kind == "Secret":
                    raw = {
                        k: base64.b64decode(v).decode() for k, v in (m.get("data") or {}).items()
                    }
                    return {**raw, **(m.get("stringData") or {})}
                return dict(m.get("data") or {})
        return {}

    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        if "configMapRef" in source:
            env.update(data("ConfigMap", source["configMapRef"]["name"]))
        if "secretRef" in source:
            env.update(data("Secret", source["secretRef"]["name"]))
    for var in spec.get("env", []):
        if "value" in var:
            # $(NAME) expands to an earlier variable; unknown references stay as they are.
            env[var["name"]] = re.sub(
                r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                lambda m: env.get(m.group(1), m.group(0)),
                str(var["value"]),
            )
            continue
        ref = var.get("valueFrom", {})
        if "secretKeyRef" in ref:
            value = data("Secret", ref["secretKeyRef"]["name"]).get(ref["secretKeyRef"]["key"])
        elif "configMapKeyRef" in ref:
            value = data("ConfigMap", ref["configMapKeyRef"]["name"]).get(
                ref["configMapKeyRef"]["key"]
            )
        elif "fieldRef" in ref:
            value = fields.get(ref["fieldRef"]["fieldPath"])
        else:
            value = None
        if value is not None:
            env[var["name"]] = value
    return env


# --- Documented option combinations, shared by the chart tests -------------------

MANAGED_URLS = {
    "secrets.databaseUrl": "postgresql://conveyor:pw@db.example.com:5432/conveyor",
    "secrets.redisUrl": "redis://:s3cret@cache.example.com:6380/2",
}

# Every documented option combination: (values files, --set-json values).
COMBOS: dict[str, tuple[list[str], dict]] = {
    "default": ([], {}),
    "dev": (["values-dev.yaml"], {}),
    "demo": (["values-demo.yaml"], {}),
    "prod": (["values-prod.yaml"], {}),
    "hpa": (
        ["values-demo.yaml"],
        {"api.autoscaling.enabled": True, "worker.autoscaling.enabled": True},
    ),
    "keda": ([], {**MANAGED_URLS, "worker.keda.enabled": True}),
    "migrations-none": (["values-demo.yaml"], {"migrations.mode": "none"}),
    "all-optional": (
        [],
        {
            **MANAGED_URLS,
            "secrets.celeryBrokerUrl": "redis://broker.example.com:6379/1",
            "flower.enabled": True,
            "loadgen.enabled": True,
            "loadgen.apiKey": "test-key",
            "ingress.enabled": True,
            "ingress.tls": [{"secretName": "t", "hosts": ["conveyor.example.com"]}],
            "metrics.scrapeAnnotations": True,
            "metrics.serviceMonitor.enabled": True,
            "config.otel.exporterOtlpEndpoint": "http://otel-collector:4318",
            "config.otel.tracesSampler": "parentbased_always_on",
            "config.otel.env": {"OTEL_METRICS_EXPORTER": "none"},
            "api.topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "ScheduleAnyway",
                }
            ],
        },
    ),
    "bare": (
        ["values-demo.yaml"],
        {
            "networkPolicy.enabled": False,
            "serviceAccount.create": False,
            "api.waitForSchema": False,
            "api.pdb.enabled": False,
            "worker.pdb.enabled": False,
        },
    ),
}

# Worker pools (test_helm_pools.py): no Deployment is the lone `worker` there.
POOL_COMBOS: dict[str, tuple[list[str], dict]] = {
    # Two worker pools (docs/deploy/helm.md), each with its own autoscaler.
    "pools": (
        [],
        {
            "workerPools": {
                "cpu": {
                    "queues": ["cpu"],
                    "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 6},
                    "resources": {"requests": {"cpu": "1", "memory": "256Mi"}},
                },
                "io": {"queues": ["io", "default"], "replicas": 3, "concurrency": 8},
            }
        },
    ),
    "pools-keda": (
        [],
        {
            **MANAGED_URLS,
            "worker.keda.enabled": True,
            "metrics.serviceMonitor.enabled": True,
            "workerPools": {
                "cpu": {"queues": ["cpu"], "keda": {"maxReplicaCount": 4}},
                "io": {"queues": ["io", "default"], "keda": {"minReplicaCount": 2}},
            },
        },
    ),
}


@functools.cache
def rendered(combo: str) -> list[dict]:
    """The manifests of one of COMBOS or POOL_COMBOS, rendered once per test session."""
    files, values = {**COMBOS, **POOL_COMBOS}[combo]
    return render(files, values)


def render_failure(values: dict[str, Any], values_files: list[str] = []) -> str:  # noqa: B006
    """Helm's error message for values that must not render."""
    try:
        render(values_files, values)
    except HelmError as exc:
        return str(exc)
    raise AssertionError(f"rendering succeeded but should have failed: {values}")


def workloads(manifests: list[dict]) -> list[dict]:
    return [m for m in manifests if m["kind"] in ("Deployment", "Job")]


def env_by_name(container: dict) -> dict[str, dict]:
    return {var["name"]: var for var in container.get("env", [])}
