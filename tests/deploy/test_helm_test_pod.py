"""The `helm test` Pod (templates/tests/): rendered, schema-valid, a Helm test
hook, and its exact command run against a real stack.

On a cluster the Pod runs `python -c <script>` in the worker image, from /app,
with CONVEYOR_URL pointing at the release's API Service. Here the same argv runs
as a local process from the repo root (where scripts/create_api_key.py sits as
it does in the image), with the venv's Python and CONVEYOR_URL set to a local
stack's API: the script itself is not changed.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from helm_render import CHART, find, find_all, render, render_failure, rendered, resolved_env
from test_helm_chart import kubernetes_validate_1_35

from tests.support.engines import ROOT
from tests.support.processes import Stack

HOOK = "helm.sh/hook"


def helm_test_pod(manifests: list[dict]) -> dict:
    pods = find_all(manifests, "Pod", "test")
    assert len(pods) == 1, [m["metadata"]["name"] for m in pods]
    return pods[0]


def script_argv(pod: dict) -> list[str]:
    [container] = pod["spec"]["containers"]
    return list(container["command"])


def test_the_pod_is_a_helm_test_hook_in_the_worker_image():
    pod = helm_test_pod(rendered("default"))
    assert pod["metadata"]["annotations"][HOOK] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    [container] = pod["spec"]["containers"]
    # The worker image carries the admin scripts (Dockerfile target `worker`).
    assert container["image"].startswith("conveyor-worker:")
    argv = script_argv(pod)
    assert argv[:2] == ["python", "-c"]
    assert "scripts/create_api_key.py" in argv[2]
    assert '"kind": "hash"' in argv[2]
    # Hardened like every other pod of the chart.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_it_targets_the_release_api_service_and_gets_the_database_url():
    manifests = rendered("demo")
    pod = helm_test_pod(manifests)
    service = find(manifests, "Service", "api")
    # resolved_env reads a workload's pod template: give it the Pod's spec as one.
    env = resolved_env(manifests, {"spec": {"template": {"spec": pod["spec"]}}})
    port = service["spec"]["ports"][0]["port"]
    assert env["CONVEYOR_URL"] == f"http://{service['metadata']['name']}:{port}"
    # create_api_key.py connects to Postgres: the release's Secret supplies it.
    assert env["DATABASE_URL"].startswith("postgresql://")


@pytest.mark.parametrize("combo", ["default", "prod", "demo"])
def test_renders_valid_kubernetes_1_35(kubernetes_validate, combo, tmp_path):
    out = tmp_path / "test-pod.yaml"
    out.write_text(yaml.safe_dump(helm_test_pod(rendered(combo))))
    kubernetes_validate_1_35(kubernetes_validate, str(out))


def test_tests_enabled_false_leaves_it_out_and_the_schema_checks_the_timeout():
    assert not find_all(render([], {"tests.enabled": False}), "Pod")
    # Tilt runs its own smoke test and no hooks: values-dev.yaml turns it off.
    assert not find_all(rendered("dev"), "Pod")
    assert "timeoutSeconds" in render_failure({"tests.timeoutSeconds": "soon"})
    assert CHART.joinpath("templates", "tests").is_dir()  # Helm's convention


def run_locally(argv: list[str], api_url: str, stack: Stack) -> subprocess.CompletedProcess[str]:
    """The Pod's argv with the venv's Python for `python`, from the repo root."""
    assert argv[0] == "python"
    return subprocess.run(
        [sys.executable, *argv[1:]],
        cwd=ROOT,
        env=stack.env(CONVEYOR_URL=api_url),
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.integration
def test_the_pods_command_passes_against_a_real_stack(stack: Stack):
    argv = script_argv(helm_test_pod(rendered("default")))
    done = run_locally(argv, f"http://127.0.0.1:{stack.api_port}", stack)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "helm test: job" in done.stdout and "succeeded on" in done.stdout


@pytest.mark.integration
def test_the_pods_command_fails_when_no_api_answers(stack: Stack):
    """The test can fail: with nothing on CONVEYOR_URL's port it exits non-zero."""
    argv = script_argv(helm_test_pod(rendered("default")))
    done = run_locally(argv, "http://127.0.0.1:9", stack)
    assert done.returncode != 0
    assert "Connection refused" in done.stderr or "URLError" in done.stderr, done.stderr


@pytest.mark.integration
def test_the_pods_command_fails_on_a_wrong_digest(stack: Stack):
    """The digest check is real: a script expecting another digest exits non-zero."""
    argv = script_argv(helm_test_pod(rendered("default")))
    broken = argv[2].replace('digest = params["data"].encode()', 'digest = b"other"')
    assert broken != argv[2]
    done = run_locally([*argv[:2], broken], f"http://127.0.0.1:{stack.api_port}", stack)
    assert done.returncode != 0
    assert "helm test: unexpected job" in done.stderr, done.stdout + done.stderr
