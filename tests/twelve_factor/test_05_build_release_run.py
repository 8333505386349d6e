"""Factor V, Build, release, run: strictly separate the stages.

- build: the Dockerfile bakes no environment-specific configuration into any
  image (no ENV or ARG for a setting the processes read, only build metadata);
- release: the chart adds the configuration, from its ConfigMap and Secret,
  and a release (image tag + configuration) is identifiable on every pod
  (the image tag, and checksum/config, checksum/secret annotations that change
  with the configuration);
- run: the image is immutable at run time, every container's root file system
  is read-only in every documented chart configuration.
Related: tests/deploy/test_helm_processes.py (test_config_and_secret_changes_roll_the_pods,
test_every_pod_is_hardened), tests/container/test_images.py (the built image's
metadata, read-only root in Docker).
"""

from __future__ import annotations

import helm_render
import pytest
import tilt_stubs
from helm_render import MANAGED_URLS, containers, find_all, render

from conveyor.api.settings import ApiSettings
from conveyor.worker.settings import SchedulerSettings, WorkerSettings
from tests.support.engines import ROOT

# Build metadata the image may carry (reported by /version), and the runtime's
# own plumbing; neither differs between deploys of one build.
BUILD_METADATA = {"APP_VERSION", "GIT_REVISION"}
RUNTIME_PLUMBING = {
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONFAULTHANDLER",
    "PIP_DISABLE_PIP_VERSION_CHECK",
    "VIRTUAL_ENV",
    "PATH",
    "PYTHONPATH",
    "UV_LINK_MODE",
    # Build-stage caches (BuildKit cache mounts); never in a final image.
    "PIP_CACHE_DIR",
    "UV_CACHE_DIR",
}
SECRET_SETTINGS = {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}
# Literal env the chart may set on a pod: the process's identity for telemetry.
POD_IDENTITY = {"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"}
WORKLOADS = ("Deployment", "Job")


def setting_names() -> set[str]:
    names = set()
    for cls in (ApiSettings, WorkerSettings, SchedulerSettings):
        names |= {name.upper() for name in cls.model_fields}
    return names


def baked_config(dockerfile: str) -> list[str]:
    """ENV/ARG names in the Dockerfile that are configuration, not build metadata."""
    settings = setting_names()
    problems = []
    for keyword, rest in tilt_stubs._instructions(dockerfile):
        if keyword not in ("ENV", "ARG"):
            continue
        words = rest.split() if "=" in rest else rest.split()[:1]
        for word in words:
            name = word.split("=", 1)[0]
            if keyword == "ARG" and name in {"PYTHON_IMAGE", "VERSION", "SOURCE_URL"}:
                continue
            if name in BUILD_METADATA or name in RUNTIME_PLUMBING:
                continue
            if name in settings or name.startswith("OTEL_") or keyword == "ENV":
                problems.append(f"{keyword} {name}")
    return problems


def test_the_dockerfile_bakes_in_no_configuration() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert baked_config(text) == []
    # The settings a deploy must give really are settings the code reads.
    assert {"DATABASE_URL", "REDIS_URL", "PORT", "LOG_LEVEL"} <= setting_names()


def test_the_checker_flags_baked_in_configuration() -> None:
    broken = (
        (ROOT / "Dockerfile")
        .read_text()
        .replace(
            "ENV APP_VERSION=${VERSION}",
            "ENV DATABASE_URL=postgresql://app@db/app LOG_LEVEL=DEBUG APP_VERSION=${VERSION}",
            1,
        )
    )
    assert baked_config(broken) == ["ENV DATABASE_URL", "ENV LOG_LEVEL"]
    assert baked_config("FROM x AS api\nARG REDIS_URL\nENV FEATURE_X 1\n") == [
        "ARG REDIS_URL",
        "ENV FEATURE_X",
    ]


def _config_problems(manifests: list[dict]) -> list[str]:
    settings = setting_names()
    problems = []
    for workload in (w for kind in WORKLOADS for w in find_all(manifests, kind)):
        name = workload["metadata"]["name"]
        hook = "helm.sh/hook" in workload["metadata"].get("annotations", {})
        for container in containers(workload):
            for var in container.get("env", []):
                if var["name"] in SECRET_SETTINGS and "value" in var:
                    problems.append(f"{name}/{container['name']}: {var['name']} as a literal")
                if "value" in var and var["name"] in settings and not hook:
                    # Long-running pods read settings from the ConfigMap (a hook
                    # runs before the release's ConfigMap exists, so it inlines them).
                    problems.append(f"{name}/{container['name']}: {var['name']} inlined")
            sources = container.get("envFrom", []) + [
                v["valueFrom"] for v in container.get("env", []) if "valueFrom" in v
            ]
            ours = any(repo in container["image"] for repo in ("conveyor-api", "conveyor-worker"))
            if (
                ours
                and not hook
                and not any(("configMapRef" in s or "configMapKeyRef" in s) for s in sources)
            ):
                problems.append(f"{name}/{container['name']}: no ConfigMap")
    return problems


@pytest.mark.parametrize("combo", ["default", "demo", "prod", "all-optional"])
def test_configuration_enters_at_release_from_configmap_and_secret(combo: str) -> None:
    manifests = helm_render.rendered(combo)
    assert _config_problems(manifests) == []
    assert find_all(manifests, "ConfigMap"), "the chart renders no ConfigMap"


def test_the_release_checker_flags_a_literal_url() -> None:
    manifests = render([], MANAGED_URLS)
    api = next(
        w for w in find_all(manifests, "Deployment") if w["metadata"]["name"].endswith("api")
    )
    api_container = next(c for c in containers(api, init=False) if c["name"] == "api")
    api_container["env"] = [{"name": "DATABASE_URL", "value": "postgresql://db/app"}]
    api_container["envFrom"] = []
    assert _config_problems(manifests) == [
        "conveyor-api/api: DATABASE_URL as a literal",
        "conveyor-api/api: DATABASE_URL inlined",
        "conveyor-api/api: no ConfigMap",
    ]


def _releases(tag: str, level: str) -> dict[str, tuple[set[str], dict[str, str]]]:
    manifests = render([], {**MANAGED_URLS, "image.tag": tag, "config.logLevel": level})
    return {
        w["metadata"]["name"]: (
            {c["image"] for c in containers(w)},
            {
                k: v
                for k, v in (w["spec"]["template"]["metadata"].get("annotations") or {}).items()
                if k.startswith("checksum/")
            },
        )
        for w in find_all(manifests, "Deployment")
    }


def test_a_release_is_identifiable_on_every_pod() -> None:
    first = _releases("1.2.3", "INFO")
    again = _releases("1.2.3", "INFO")
    reconfigured = _releases("1.2.3", "DEBUG")
    rebuilt = _releases("1.2.4", "INFO")
    assert first == again  # deterministic: the same release, the same identity
    assert {"conveyor-api", "conveyor-worker", "conveyor-scheduler"} <= first.keys()
    for name, (images, checksums) in first.items():
        assert images and all(image.endswith(":1.2.3") for image in images), (name, images)
        assert {"checksum/config", "checksum/secret"} <= checksums.keys(), (name, checksums)
        # New configuration: a new release on the same build.
        assert reconfigured[name][0] == images
        assert reconfigured[name][1]["checksum/config"] != checksums["checksum/config"], name
        # New build: a new image tag on every container.
        assert all(image.endswith(":1.2.4") for image in rebuilt[name][0])


@pytest.mark.parametrize("combo", ["default", "demo", "prod", "all-optional"])
def test_the_root_file_system_is_read_only(combo: str) -> None:
    manifests = helm_render.rendered(combo)
    checked = 0
    for workload in (w for kind in WORKLOADS for w in find_all(manifests, kind)):
        for container in containers(workload):
            context = container.get("securityContext") or {}
            assert context.get("readOnlyRootFilesystem") is True, (
                workload["metadata"]["name"],
                container["name"],
            )
            checked += 1
    assert checked >= 4
