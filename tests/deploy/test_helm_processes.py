"""What the chart runs: the Procfile's commands, probes on the endpoints the code
serves, exactly the environment the code reads, migrations (hook or plain Job),
hardening, graceful-termination arithmetic and network policy.
"""

from __future__ import annotations

import pytest
from helm_render import (
    COMBOS,
    MANAGED_URLS,
    component_of,
    containers,
    env_by_name,
    find,
    find_all,
    pod_spec,
    render,
    render_failure,
    rendered,
    resolved_env,
    workloads,
)

# The environment the code reads (the settings contract), and nothing else.
CONTRACT_ENV = {
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "PORT",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "WORKER_CONCURRENCY",
    "METRICS_PORT",
    "JOB_LEASE_SECONDS",
    "RECONCILE_INTERVAL_SECONDS",
    "RECONCILE_QUEUED_AFTER_SECONDS",
    "GRACEFUL_TIMEOUT_SECONDS",
    "WORKER_SHUTDOWN_GRACE_SECONDS",
    "RATE_LIMIT_PER_MINUTE",
    "IDEMPOTENCY_TTL_HOURS",
    "JOB_RETENTION_DAYS",
    "HEARTBEAT_FILE",
    "OTEL_SERVICE_NAME",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_RESOURCE_ATTRIBUTES",
}
# Downward-API fields that OTEL_RESOURCE_ATTRIBUTES expands with $(...): the
# only way Kubernetes can put them inside a string.
DOWNWARD_HELPERS = {"K8S_POD_NAME", "K8S_NAMESPACE_NAME", "K8S_NODE_NAME"}
CONVEYOR_COMPONENTS = ("api", "worker", "scheduler", "migrate")


@pytest.mark.parametrize("combo", ["default", "dev", "prod"])
def test_commands_equal_the_procfile(procfile, combo):
    manifests = rendered(combo)
    migrate = find(manifests, "Job", "migrate")
    expected = {
        "web": pod_spec(find(manifests, "Deployment", "api"))["containers"][0],
        "worker": pod_spec(find(manifests, "Deployment", "worker"))["containers"][0],
        "scheduler": pod_spec(find(manifests, "Deployment", "scheduler"))["containers"][0],
        "release": pod_spec(migrate)["containers"][0],
    }
    for process, container in expected.items():
        assert container["command"] == procfile[process], process
        assert "args" not in container, process


def test_api_probes_hit_the_endpoints_the_api_serves():
    api = find(rendered("default"), "Deployment", "api")
    [container] = pod_spec(api)["containers"]
    [port] = container["ports"]
    assert port["name"] == "http"
    assert resolved_env(rendered("default"), api, "api")["PORT"] == str(port["containerPort"])
    paths = {
        p: container[p]["httpGet"]["path"]
        for p in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert paths == {
        "startupProbe": "/livez",
        "livenessProbe": "/livez",
        "readinessProbe": "/readyz",
    }
    assert all(container[p]["httpGet"]["port"] == "http" for p in paths)
    # The API waits for the schema in an initContainer instead of crash-looping.
    [init] = pod_spec(api)["initContainers"]
    assert init["command"] == ["python", "-m", "conveyor.api.wait_for_schema"]


def test_worker_probes_run_the_healthcheck():
    [container] = pod_spec(find(rendered("default"), "Deployment", "worker"))["containers"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["exec"]["command"] == [
            "python",
            "-m",
            "conveyor.worker.healthcheck",
        ]


@pytest.mark.parametrize("combo", COMBOS)
def test_env_names_are_the_settings_the_code_reads(combo):
    manifests = rendered(combo)
    passthrough = set(COMBOS[combo][1].get("config.otel.env", {}))  # the user's own OTEL_* extras
    allowed = CONTRACT_ENV | DOWNWARD_HELPERS | passthrough
    config_keys = set(find(manifests, "ConfigMap")["data"])
    assert config_keys <= allowed, config_keys - allowed
    for secret in find_all(manifests, "Secret"):
        if secret["metadata"]["name"] in ("conveyor", "conveyor-migrate"):
            assert set(secret["data"]) <= {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}
    for workload in workloads(manifests):
        component = component_of(workload)
        if component not in CONVEYOR_COMPONENTS:
            continue
        for container in containers(workload):
            env = env_by_name(container)
            from_config = config_keys if container.get("envFrom") else set()
            names = set(env) | from_config
            assert names <= allowed, names - allowed
            assert {
                "DATABASE_URL",
                "REDIS_URL",
                "CELERY_BROKER_URL",
                "LOG_LEVEL",
                "LOG_FORMAT",
                "OTEL_SERVICE_NAME",
                "OTEL_RESOURCE_ATTRIBUTES",
            } <= names, container["name"]
            assert env["OTEL_SERVICE_NAME"]["value"] == f"conveyor-{component}"
            # $(VAR) expands only variables defined earlier in the list.
            order = list(env)
            assert max(order.index(h) for h in DOWNWARD_HELPERS) < order.index(
                "OTEL_RESOURCE_ATTRIBUTES"
            )


def test_env_resolves_to_the_configured_values():
    manifests = rendered("keda")
    env = resolved_env(
        manifests,
        find(manifests, "Deployment", "worker"),
        "worker",
        fields={"metadata.name": "w-1", "spec.nodeName": "n-1"},
    )
    assert env["DATABASE_URL"] == MANAGED_URLS["secrets.databaseUrl"]
    assert env["REDIS_URL"] == MANAGED_URLS["secrets.redisUrl"]
    assert "CELERY_BROKER_URL" not in env  # optional key, absent from the Secret
    assert (
        env["OTEL_RESOURCE_ATTRIBUTES"]
        == "k8s.pod.name=w-1,k8s.namespace.name=conveyor,k8s.node.name=n-1"
    )
    assert (env["WORKER_CONCURRENCY"], env["METRICS_PORT"], env["OTEL_TRACES_EXPORTER"]) == (
        "2",
        "9808",
        "none",
    )
    # Head sampling is the chart's default: one trace in ten.
    assert (env["OTEL_TRACES_SAMPLER"], env["OTEL_TRACES_SAMPLER_ARG"]) == (
        "parentbased_traceidratio",
        "0.1",
    )


def test_existing_secret_is_used_and_not_created():
    manifests = rendered("prod")
    assert not [
        m for m in find_all(manifests, "Secret") if m["metadata"]["name"] != "conveyor-keda-redis"
    ]
    for workload in workloads(manifests):
        for container in containers(workload):
            ref = env_by_name(container)["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
            assert ref["name"] == "conveyor-backing-services"


def test_config_and_secret_changes_roll_the_pods():
    def checksums(values):
        manifests = render(["values-demo.yaml"], values)
        return {
            component_of(d): d["spec"]["template"]["metadata"]["annotations"]
            for d in find_all(manifests, "Deployment")
        }

    base = checksums({})
    config = checksums({"config.logLevel": "DEBUG"})
    secret = checksums({"secrets.redisUrl": "redis://other:6379/0"})
    for component in ("api", "worker", "scheduler"):
        assert config[component]["checksum/config"] != base[component]["checksum/config"]
        assert config[component]["checksum/secret"] == base[component]["checksum/secret"]
        assert secret[component]["checksum/secret"] != base[component]["checksum/secret"]
    existing = checksums({"secrets.existingSecret": "mine"})
    assert "checksum/secret" not in existing["api"]


# --- migrations ---------------------------------------------------------------


def test_migration_is_a_pre_install_upgrade_hook_by_default():
    manifests = rendered("default")
    job = find(manifests, "Job", "migrate")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    # Hooks run before the release's Secret exists: the Job reads a hook-scoped copy made first.
    hook_secret = find(manifests, "Secret", "migrate")
    assert int(hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        job["metadata"]["annotations"]["helm.sh/hook-weight"]
    )
    refs = {
        v["valueFrom"]["secretKeyRef"]["name"]
        for v in pod_spec(job)["containers"][0]["env"]
        if "secretKeyRef" in v.get("valueFrom", {})
    }
    assert refs == {hook_secret["metadata"]["name"]}
    assert pod_spec(job)["restartPolicy"] == "Never"


def test_migration_as_a_plain_job_for_tilt():
    job = find(rendered("dev"), "Job", "migrate")
    assert "helm.sh/hook" not in job["metadata"].get("annotations", {})
    assert job["metadata"]["name"] == "conveyor-migrate"  # stable: the Tiltfile names it
    assert not find_all(rendered("migrations-none"), "Job")


# --- hardening, graceful termination, network ----------------------------------


@pytest.mark.parametrize("combo", COMBOS)
def test_every_pod_is_hardened(combo):
    for workload in workloads(rendered(combo)):
        spec = pod_spec(workload)
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in spec["volumes"]
        for c in containers(workload):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]


@pytest.mark.parametrize("combo", COMBOS)
def test_graceful_termination_arithmetic(combo):
    manifests = rendered(combo)
    api = find(manifests, "Deployment", "api")
    worker = find(manifests, "Deployment", "worker")
    api_env = resolved_env(manifests, api, "api")
    pre_stop = pod_spec(api)["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert (
        pre_stop + int(api_env["GRACEFUL_TIMEOUT_SECONDS"])
        < pod_spec(api)["terminationGracePeriodSeconds"]
    )
    worker_env = resolved_env(manifests, worker, "worker")
    assert (
        int(worker_env["WORKER_SHUTDOWN_GRACE_SECONDS"])
        < pod_spec(worker)["terminationGracePeriodSeconds"]
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"api.terminationGracePeriodSeconds": 15},
            "api.terminationGracePeriodSeconds (15) must be greater than "
            "api.preStopSleepSeconds + api.gracefulTimeoutSeconds (5 + 10)",
        ),
        (
            {"worker.terminationGracePeriodSeconds": 20},
            "worker.terminationGracePeriodSeconds (20) must be greater than "
            "worker.shutdownGraceSeconds (20)",
        ),
    ],
)
def test_graceful_termination_violations_fail_clearly(values, message):
    assert message in render_failure(values)


def test_network_policy_ingress():
    def ingress(manifests):
        return {
            component_of(p): p["spec"].get("ingress") for p in find_all(manifests, "NetworkPolicy")
        }

    default = ingress(rendered("default"))
    assert default["api"] == [{"ports": [{"port": 8000, "protocol": "TCP"}]}]
    assert default["worker"] == default["scheduler"] == default["migrate"] == []
    scraped = ingress(rendered("all-optional"))
    assert scraped["worker"] == [{"ports": [{"port": 9808, "protocol": "TCP"}]}]
    assert scraped["scheduler"] == scraped["worker"]  # its lease counters are scraped too
    assert scraped["migrate"] == []
    assert not find_all(rendered("bare"), "NetworkPolicy")
