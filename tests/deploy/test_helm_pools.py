"""workerPools: a Deployment per pool, each with disjoint selectors, its own
replicas, autoscaler (HPA or KEDA on its own queues' lists) and PDB; the
default install keeps the one `<fullname>-worker` of before pools."""

from __future__ import annotations

import pytest
import yaml
from helm_render import (
    MANAGED_URLS,
    POOL_COMBOS,
    component_of,
    find,
    find_all,
    pod_spec,
    render,
    render_failure,
    rendered,
    resolved_env,
)
from test_helm_chart import CRD_API_VERSIONS, kubernetes_validate_1_35

WORKERS = ("worker-cpu", "worker-io")


def worker_deployments(manifests: list[dict]) -> dict[str, dict]:
    return {
        str(component_of(d)): d
        for d in find_all(manifests, "Deployment")
        if str(component_of(d)).startswith("worker")
    }


@pytest.mark.parametrize("combo", POOL_COMBOS)
def test_pools_render_valid_kubernetes_1_35(kubernetes_validate, combo, tmp_path):
    manifests = rendered(combo)
    plain = [m for m in manifests if m["kind"] not in CRD_API_VERSIONS]
    out = tmp_path / f"{combo}.yaml"
    out.write_text(yaml.safe_dump_all(plain))
    kubernetes_validate_1_35(kubernetes_validate, str(out))


@pytest.mark.parametrize("combo", POOL_COMBOS)
def test_two_pools_are_two_deployments_with_disjoint_selectors(combo):
    manifests = rendered(combo)
    deployments = {component_of(d): d for d in find_all(manifests, "Deployment")}
    assert set(worker_deployments(manifests)) == set(WORKERS)  # no `worker` besides them
    assert {d["metadata"]["name"] for d in worker_deployments(manifests).values()} == {
        "conveyor-worker-cpu",
        "conveyor-worker-io",
    }
    for component, deployment in deployments.items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        for other, other_deployment in deployments.items():
            labels = other_deployment["spec"]["template"]["metadata"]["labels"]
            assert (selector.items() <= labels.items()) == (other == component), (component, other)


def test_each_pool_serves_its_queues_with_its_own_settings():
    manifests = rendered("pools")
    workers = worker_deployments(manifests)
    cpu_env = resolved_env(manifests, workers["worker-cpu"], "worker")
    io_env = resolved_env(manifests, workers["worker-io"], "worker")
    assert (cpu_env["WORKER_QUEUES"], io_env["WORKER_QUEUES"]) == ("cpu", "io,default")
    assert (cpu_env["WORKER_CONCURRENCY"], io_env["WORKER_CONCURRENCY"]) == ("2", "8")
    assert "replicas" not in workers["worker-cpu"]["spec"]  # its HPA owns the count
    assert workers["worker-io"]["spec"]["replicas"] == 3
    [cpu] = pod_spec(workers["worker-cpu"])["containers"]
    assert cpu["resources"]["requests"] == {"cpu": "1", "memory": "256Mi"}
    [io] = pod_spec(workers["worker-io"])["containers"]
    assert io["resources"]["requests"] == {"cpu": "250m", "memory": "256Mi"}  # worker's


def test_each_pool_has_its_own_hpa_and_pdb():
    manifests = rendered("pools")
    [hpa] = find_all(manifests, "HorizontalPodAutoscaler")  # only the cpu pool asked
    assert component_of(hpa) == "worker-cpu"
    assert hpa["spec"]["scaleTargetRef"]["name"] == "conveyor-worker-cpu"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    for component in WORKERS:
        pdb = find(manifests, "PodDisruptionBudget", component)
        selector = pdb["spec"]["selector"]["matchLabels"]
        matched = [
            c
            for c, d in worker_deployments(manifests).items()
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert matched == [component]


def test_keda_scales_each_pool_on_its_own_queues_lists():
    manifests = rendered("pools-keda")
    assert not find_all(manifests, "HorizontalPodAutoscaler")
    lists = {}
    for component in WORKERS:
        scaled = find(manifests, "ScaledObject", component)
        assert scaled["spec"]["scaleTargetRef"]["name"] == f"conveyor-{component}"
        assert {t["type"] for t in scaled["spec"]["triggers"]} == {"redis"}
        lists[component] = [t["metadata"]["listName"] for t in scaled["spec"]["triggers"]]
        assert "replicas" not in find(manifests, "Deployment", component)["spec"]
    assert lists == {
        "worker-cpu": ["conveyor.jobs.cpu"],
        "worker-io": ["conveyor.jobs.io", "conveyor.jobs.default"],
    }
    cpu, io = (find(manifests, "ScaledObject", c)["spec"] for c in WORKERS)
    assert (cpu["minReplicaCount"], cpu["maxReplicaCount"]) == (1, 4)
    assert (io["minReplicaCount"], io["maxReplicaCount"]) == (2, 10)
    # io is guaranteed two pods: it gets a PDB; cpu (one) does not.
    pdbs = [component_of(p) for p in find_all(manifests, "PodDisruptionBudget")]
    assert [c for c in pdbs if str(c).startswith("worker")] == ["worker-io"]


def test_metrics_service_and_network_policy_reach_every_pool():
    manifests = rendered("pools-keda")
    service = next(
        s
        for s in find_all(manifests, "Service")
        if s["metadata"]["name"] == "conveyor-worker-metrics"
    )
    policy = find(manifests, "NetworkPolicy", "worker")
    for deployment in worker_deployments(manifests).values():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()


def test_the_default_is_one_pool_serving_every_queue_under_the_old_name():
    manifests = rendered("default")
    [(component, worker)] = worker_deployments(manifests).items()
    assert (component, worker["metadata"]["name"]) == ("worker", "conveyor-worker")
    assert worker["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "worker"
    assert "WORKER_QUEUES" not in resolved_env(manifests, worker, "worker")  # every queue
    keda = rendered("keda")
    [scaled] = find_all(keda, "ScaledObject")
    assert [t["metadata"]["listName"] for t in scaled["spec"]["triggers"]] == [
        "conveyor.jobs.cpu",
        "conveyor.jobs.default",
        "conveyor.jobs.io",
    ]


def test_kind_queues_reach_the_config_and_their_queue_needs_a_pool():
    values = {"config.kindQueues": {"sleep": "slow"}}
    config = find(render([], values), "ConfigMap")["data"]
    assert config["KIND_QUEUES"] == "sleep=slow"
    message = render_failure(
        {**values, "workerPools": {"cpu": {"queues": ["cpu", "io", "default"]}}}
    )
    assert "workerPools: no pool serves the queue slow" in message


@pytest.mark.parametrize(
    ("pools", "expected"),
    [
        ({"cpu": {"queues": ["cpu"]}}, "workerPools: no pool serves the queue default"),
        (
            {"all": {}, "gpu": {"queues": ["gpu"]}},
            "workerPools.gpu.queues names gpu, which no kind is routed to",
        ),
        (
            {"all": {"autoscaling": {"enabled": True}, "keda": {"enabled": True}}},
            "workerPools.all: autoscaling.enabled and keda.enabled are both true",
        ),
        (
            {"all": {"terminationGracePeriodSeconds": 5}},
            "workerPools.all: terminationGracePeriodSeconds (5) must be greater than",
        ),
        # The schema: pool names are lowercase DNS labels, queue names as the code's.
        ({"Bad_Name": {}}, "'Bad_Name' does not match pattern"),
        ({"all": {"queues": ["CPU"]}}, "'CPU' does not match pattern"),
    ],
)
def test_bad_pools_fail_clearly(pools, expected):
    assert expected in render_failure({**MANAGED_URLS, "workerPools": pools})
