"""The cluster's scrape job (deploy/observability/prometheus-values.yaml), run
by a real Prometheus against the pods the Conveyor chart renders with
conveyor-values.yaml.

No cluster runs here, so Kubernetes discovery is replaced by what it would
discover: one target per container port of each pod (init containers and
port-less containers included), with the `__meta_kubernetes_pod_*` labels
Prometheus's pod role gives them, served through file_sd. The job's own
relabelling then has to keep exactly the API, worker and scheduler pods, at
their annotated metrics ports, named conveyor-<component> with their namespace.
Debian's Prometheus has no Kubernetes discovery of its own to try it with.

Needs Debian's `prometheus` package: without it this tier fails, never skips."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.observability.prometheus import prometheus_binary, run_prometheus
from tests.support.engines import ROOT

sys.path.insert(0, str(ROOT / "tests" / "deploy"))
from helm_render import render

pytestmark = pytest.mark.observability

VALUES = ROOT / "deploy" / "observability"
NAMESPACE = "shop"
POD_IP = "10.1.2.3"


def sanitize(name: str) -> str:
    """Prometheus's label-name sanitising of Kubernetes label and annotation keys."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def discovered(manifests: list[dict]) -> list[dict[str, Any]]:
    """file_sd target groups: what the pod role discovers for every pod the chart runs."""
    groups = []
    for obj in manifests:
        if obj["kind"] not in ("Deployment", "Job"):
            continue
        template = obj["spec"]["template"]
        meta, spec = template["metadata"], template["spec"]
        pod = {
            "__meta_kubernetes_namespace": NAMESPACE,
            "__meta_kubernetes_pod_name": f"{obj['metadata']['name']}-7d9f-x2x",
            "__meta_kubernetes_pod_phase": "Succeeded" if obj["kind"] == "Job" else "Running",
            **{
                f"__meta_kubernetes_pod_label_{sanitize(k)}": v
                for k, v in (meta.get("labels") or {}).items()
            },
            **{
                f"__meta_kubernetes_pod_annotation_{sanitize(k)}": str(v)
                for k, v in (meta.get("annotations") or {}).items()
            },
        }
        containers = [(c, "true") for c in spec.get("initContainers", [])] + [
            (c, "false") for c in spec["containers"]
        ]
        for container, init in containers:
            ports = [p["containerPort"] for p in container.get("ports", [])] or [None]
            for port in ports:
                groups.append(
                    {
                        "targets": [f"{POD_IP}:{port}" if port else POD_IP],
                        "labels": {
                            **pod,
                            "__meta_kubernetes_pod_container_name": container["name"],
                            "__meta_kubernetes_pod_container_init": init,
                        },
                    }
                )
    return groups


def test_the_scrape_job_keeps_conveyors_pods_at_their_metrics_ports(tmp_path: Path) -> None:
    binary = prometheus_binary()
    if binary is None:
        pytest.fail("prometheus is not installed: apt-get install prometheus", pytrace=False)
    manifests = render(
        [str(VALUES / "conveyor-values.yaml")],
        {
            "secrets.databaseUrl": "postgresql://u:p@db:5432/c",
            "secrets.redisUrl": "redis://r:6379/0",
            "flower.enabled": True,  # a Conveyor pod without scrape annotations
        },
    )
    pods = tmp_path / "pods.json"
    pods.write_text(json.dumps(discovered(manifests)))
    values = yaml.safe_load((VALUES / "prometheus-values.yaml").read_text())
    [job] = [
        s
        for s in values["serverFiles"]["prometheus.yml"]["scrape_configs"]
        if "kubernetes_sd_configs" in s
    ]
    job = {k: v for k, v in job.items() if k != "kubernetes_sd_configs"}
    job["file_sd_configs"] = [{"files": [str(pods)]}]
    with run_prometheus(binary, tmp_path, {}, [], scrape_configs=[job]) as prom:
        deadline = time.monotonic() + 30
        while True:
            body = httpx.get(f"{prom.url}/api/v1/targets", timeout=10).json()["data"]
            if body["activeTargets"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    kept = sorted(
        (t["labels"]["job"], t["labels"]["instance"], t["labels"]["namespace"], t["scrapeUrl"])
        for t in body["activeTargets"]
    )
    name = {
        c: f"{o['metadata']['name']}-7d9f-x2x"
        for o in manifests
        if o["kind"] == "Deployment"
        for c in [o["metadata"]["labels"]["app.kubernetes.io/component"]]
    }
    assert kept == sorted(
        (f"conveyor-{component}", f"{POD_IP}:{port}", NAMESPACE, f"http://{POD_IP}:{port}/metrics")
        for component, port in (("api", 8000), ("worker", 9808), ("scheduler", 9808))
    ), body["activeTargets"]
    pods_of = {t["labels"]["job"]: t["labels"]["pod"] for t in body["activeTargets"]}
    assert pods_of == {f"conveyor-{c}": name[c] for c in ("api", "worker", "scheduler")}
    # The rest were seen and dropped: init containers, the migration Job, Flower.
    assert len(body["droppedTargets"]) == len(discovered(manifests)) - 3
