"""The chart's workloads scale independently: separate Deployments with disjoint
selectors, an HPA or KEDA (never both) on the worker, PDBs only where they
cannot block a drain, and a singleton scheduler.
"""

from __future__ import annotations

import base64

import pytest
from helm_render import (
    COMBOS,
    MANAGED_URLS,
    component_of,
    find,
    find_all,
    render,
    render_failure,
    rendered,
)


@pytest.mark.parametrize("combo", COMBOS)
def test_workloads_are_separate(combo):
    manifests = rendered(combo)
    deployments = {component_of(d): d for d in find_all(manifests, "Deployment")}
    assert {"api", "worker", "scheduler"} <= set(deployments)
    for component, deployment in deployments.items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector["app.kubernetes.io/component"] == component
        # A selector matches its own pods and nobody else's, so `kubectl scale`,
        # an HPA or a PDB on one Deployment never touches another.
        for other, other_deployment in deployments.items():
            labels = other_deployment["spec"]["template"]["metadata"]["labels"]
            matches = selector.items() <= labels.items()
            assert matches == (other == component), (component, other)


@pytest.mark.parametrize("combo", COMBOS)
def test_scheduler_is_a_recreated_singleton(combo):
    manifests = rendered(combo)
    scheduler = find(manifests, "Deployment", "scheduler")
    assert scheduler["spec"]["replicas"] == 1
    assert scheduler["spec"]["strategy"] == {"type": "Recreate"}
    for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget", "ScaledObject"):
        assert not find_all(manifests, kind, "scheduler")


def test_hpa_targets_each_deployment_on_cpu():
    manifests = rendered("hpa")
    for component in ("api", "worker"):
        deployment = find(manifests, "Deployment", component)
        hpa = find(manifests, "HorizontalPodAutoscaler", component)
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": deployment["metadata"]["name"],
        }
        [metric] = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        # The HPA owns the count: a `helm upgrade` must not reset it.
        assert "replicas" not in deployment["spec"]
    assert not find_all(rendered("default"), "HorizontalPodAutoscaler")


def test_keda_scales_the_worker_on_the_celery_list():
    manifests = rendered("keda")
    worker = find(manifests, "Deployment", "worker")
    scaled = find(manifests, "ScaledObject", "worker")
    assert scaled["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    assert "replicas" not in worker["spec"]
    assert not find_all(manifests, "HorizontalPodAutoscaler")
    trigger, *others = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    # Celery's Redis transport keeps queue Q's default-priority messages in list Q:
    # the one pool serves every queue, one trigger each (test_helm_pools.py).
    assert trigger["metadata"]["listName"] == "conveyor.jobs.cpu"
    assert [t["metadata"] | {"listName": "x"} for t in others] == [
        trigger["metadata"] | {"listName": "x"}
    ] * 2
    # Derived from redis://:s3cret@cache.example.com:6380/2.
    assert trigger["metadata"]["databaseIndex"] == "2"
    assert trigger["metadata"]["enableTLS"] == "false"
    auth = find(manifests, "TriggerAuthentication", "worker")
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    secrets = {m["metadata"]["name"]: m["data"] for m in find_all(manifests, "Secret")}
    derived = {
        param: base64.b64decode(secrets[name][key]).decode() for param, (name, key) in refs.items()
    }
    assert derived == {"address": "cache.example.com:6380", "password": "s3cret"}
    assert find_all(manifests, "PodDisruptionBudget", "worker") == []  # minReplicaCount 1


def test_keda_with_existing_secret_uses_the_named_auth_secret():
    manifests = rendered("prod")
    auth = find(manifests, "TriggerAuthentication", "worker")
    assert {r["name"] for r in auth["spec"]["secretTargetRef"]} == {"conveyor-keda-redis"}
    assert (
        find(manifests, "ScaledObject", "worker")["spec"]["triggers"][0]["metadata"]["enableTLS"]
        == "true"
    )


def test_keda_and_hpa_on_the_worker_fail_clearly():
    message = render_failure(
        {**MANAGED_URLS, "worker.keda.enabled": True, "worker.autoscaling.enabled": True}
    )
    assert "worker.autoscaling.enabled and worker.keda.enabled are both true" in message


API_HPA = {"api.autoscaling.enabled": True}
WORKER_KEDA = {**MANAGED_URLS, "worker.keda.enabled": True}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"api.replicas": 1, "worker.replicas": 1}, set()),
        ({"api.replicas": 3, "worker.replicas": 2}, {"api", "worker"}),
        ({**API_HPA, "api.autoscaling.minReplicas": 1, "worker.replicas": 1}, set()),
        ({**API_HPA, "api.autoscaling.minReplicas": 2, "worker.replicas": 1}, {"api"}),
        ({**WORKER_KEDA, "api.replicas": 1, "worker.keda.minReplicaCount": 0}, set()),
        ({**WORKER_KEDA, "api.replicas": 1, "worker.keda.minReplicaCount": 2}, {"worker"}),
    ],
)
def test_pdb_only_where_more_than_one_pod_is_guaranteed(values, expected):
    pdbs = find_all(render([], values), "PodDisruptionBudget")
    assert {component_of(p) for p in pdbs} == expected
    for pdb in pdbs:
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert selector["app.kubernetes.io/component"] == component_of(pdb)
