"""The Tiltfile's contract, checked without Tilt.

tilt_stubs.evaluate() loads the root Tiltfile with starlark-pyo3 against
stand-ins for Tilt's builtins, and renders the chart with a real `helm
template` exactly as Tilt's helm() would. The contract (tilt_checks_*.py) must
hold under every option combination; the tests below pin what the dev loop
promises. test_tiltfile_breaks.py shows that each check can fail.

Needs helm on PATH (conftest.py fails every test here without it) and starlark-pyo3.
"""

from __future__ import annotations

import itertools

import pytest
import tilt_stubs
from tilt_build import parse_dockerfile, stage_chain
from tilt_checks_deploy import contract_problems
from tilt_read import cmd_text, containers, parse_watchfiles, pod_spec, waits_for
from tilt_stubs import REPO, TRIGGER_MODE_MANUAL, Resource, Run, TiltRun

OPTION_COMBOS = [{}] + [
    {"workers": workers, "keda": keda, "flower": flower, "loadgen": loadgen}
    for workers, keda, flower, loadgen in itertools.product(
        ["1", "3"], [False, True], [False, True], [False, True]
    )
]


def combo_id(args: dict) -> str:
    on = "".join(f"+{k}" for k in args if args[k] is True)
    return f"workers={args['workers']}{on}" if args else "defaults"


@pytest.fixture(scope="module")
def default_run() -> TiltRun:
    return tilt_stubs.evaluate()


def resource(run: TiltRun, name: str) -> Resource:
    found = [r for r in [*run.k8s_resources, *run.local_resources] if r.name == name]
    assert len(found) == 1, f"expected one resource {name!r}, found {len(found)}"
    return found[0]


def deployed(run: TiltRun, kind: str, name: str) -> dict:
    found = [o.obj for o in run.k8s_objects if o.kind == kind and o.name == name]
    assert len(found) == 1, f"expected one {kind}/{name} deployed, found {len(found)}"
    return found[0]


@pytest.mark.parametrize("args", OPTION_COMBOS, ids=combo_id)
def test_every_option_combination_keeps_the_contract(args: dict) -> None:
    problems = contract_problems(tilt_stubs.evaluate(args=args))
    assert not problems, "\n".join(problems)


# --- What the dev loop promises ----------------------------------------------------------


def test_it_builds_the_api_and_worker_targets_of_the_root_dockerfile(default_run: TiltRun) -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    builds = {img.ref: img for img in default_run.images}
    assert set(builds) == {"conveyor-api", "conveyor-worker"}
    for ref, target in (("conveyor-api", "api"), ("conveyor-worker", "worker")):
        img = builds[ref]
        assert img.context == "." and img.dockerfile_text is not None
        assert img.dockerfile_text.startswith(dockerfile)
        chain = stage_chain(parse_dockerfile(img.dockerfile_text), img.target)
        assert target in [s.name for s in chain], chain


@pytest.mark.parametrize(
    ("ref", "synced", "lock"),
    [
        ("conveyor-api", {"libs/common/src", "services/api/src"}, "requirements/api.txt"),
        ("conveyor-worker", {"libs/common/src", "services/worker/src"}, "requirements/worker.txt"),
    ],
)
def test_live_update_syncs_code_and_rebuilds_on_a_lock_change(
    default_run: TiltRun, ref: str, synced: set[str], lock: str
) -> None:
    [img] = [i for i in default_run.images if i.ref == ref]
    assert {s.local_path for s in img.syncs} == synced
    assert {f"/app/{p}" for p in synced} == {s.remote_path for s in img.syncs}
    packages = {p.removesuffix("/src") + "/pyproject.toml" for p in synced}
    assert {"requirements/uv.txt", lock, *packages} == set(img.fall_back_on)
    assert not [s for s in img.live_update if isinstance(s, Run)], "watchfiles restarts, not run()"


@pytest.mark.parametrize(
    ("name", "process"),
    [
        ("conveyor-api", "python -m conveyor.api"),
        ("conveyor-worker", "python -m conveyor.worker"),
        ("conveyor-scheduler", "python -m conveyor.worker.scheduler"),
    ],
)
def test_long_running_processes_restart_under_watchfiles(
    default_run: TiltRun, name: str, process: str
) -> None:
    container = containers(deployed(default_run, "Deployment", name), init=False)[0]
    watch = parse_watchfiles(container["command"])
    assert watch is not None and watch[0] == process, container["command"]


def test_one_off_commands_keep_the_charts_commands(default_run: TiltRun) -> None:
    job = deployed(default_run, "Job", "conveyor-migrate")
    assert containers(job)[0]["command"] == ["python", "scripts/migrate.py"]
    assert "helm.sh/hook" not in (job["metadata"].get("annotations") or {}), "Tilt skips hooks"
    api = deployed(default_run, "Deployment", "conveyor-api")
    wait = ["python", "-m", "conveyor.api.wait_for_schema"]
    assert pod_spec(api)["initContainers"][0]["command"] == wait


def test_it_deploys_the_chart_with_dev_values_and_the_dev_datastores(
    default_run: TiltRun,
) -> None:
    [call] = default_run.helm_calls
    assert (call.chart, call.name, call.error) == ("deploy/helm/conveyor", "conveyor", None)
    assert call.values == ["deploy/helm/conveyor/values-dev.yaml"]
    assert call.objects, "helm rendered nothing"
    sources = {o.source for o in default_run.k8s_objects}
    # The chart's objects, after the Tiltfile's dev edits, and the dev data stores.
    assert sources == {"encode_yaml_stream", "deploy/dev/postgres.yaml", "deploy/dev/redis.yaml"}


def test_start_order_labels_and_port_forwards(default_run: TiltRun) -> None:
    assert {"conveyor-postgres", "conveyor-redis"} <= waits_for(default_run, "conveyor-migrate")
    for name in ("conveyor-api", "conveyor-worker", "conveyor-scheduler"):
        assert "conveyor-migrate" in waits_for(default_run, name)
        assert resource(default_run, name).labels == ["conveyor"]
    forwards = {
        name: {
            (pf.local_port, pf.container_port) for pf in resource(default_run, name).port_forwards
        }
        for name in ("conveyor-api", "conveyor-postgres", "conveyor-redis")
    }
    assert forwards == {
        "conveyor-api": {(8000, 8000)},
        "conveyor-postgres": {(15432, 5432)},
        "conveyor-redis": {(16379, 6379)},
    }


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("tests", "make test"),
        ("loadtest", "make loadtest"),
        ("workers-scale-up", "scale deployment/conveyor-worker --replicas="),
        ("workers-scale-down", "scale deployment/conveyor-worker --replicas="),
    ],
)
def test_buttons_wait_for_a_click(default_run: TiltRun, name: str, command: str) -> None:
    button = resource(default_run, name)
    assert command in cmd_text(button.cmd), button.cmd
    assert button.auto_init is False and button.trigger_mode == TRIGGER_MODE_MANUAL


def test_tilt_ci_waits_for_an_api_key_and_a_real_job(default_run: TiltRun) -> None:
    assert resource(default_run, "api-key").auto_init is True
    smoke = resource(default_run, "smoke-test")
    assert smoke.auto_init is True
    assert {"conveyor-api", "conveyor-worker"} <= waits_for(default_run, "smoke-test")
    command = smoke.cmd[smoke.cmd.index("--") + 1 :]
    assert command[:2] == ["python", "-c"], smoke.cmd
    compile(command[2], "smoke-test", "exec")
    assert '"kind": "hash"' in command[2]


def test_the_options_it_defines() -> None:
    run = tilt_stubs.evaluate()
    # Tilt has no define_int: --workers is a string the Tiltfile checks.
    assert run.config_defs == {
        "workers": "string",
        "keda": "bool",
        "flower": "bool",
        "loadgen": "bool",
        "observability": "bool",
    }


@pytest.mark.parametrize(
    ("args", "name", "local_ports", "waits_for_"),
    [
        ({"flower": True}, "conveyor-flower", [5555], "conveyor-redis"),
        ({"loadgen": True}, "conveyor-loadgen", [8089], "conveyor-api"),
    ],
)
def test_an_option_adds_a_resource(
    args: dict, name: str, local_ports: list[int], waits_for_: str
) -> None:
    run = tilt_stubs.evaluate(args=args)
    assert [pf.local_port for pf in resource(run, name).port_forwards] == local_ports
    assert waits_for_ in waits_for(run, name)


def test_workers_sets_the_replicas_and_keda_takes_them_over() -> None:
    run = tilt_stubs.evaluate(args={"workers": "3"})
    assert deployed(run, "Deployment", "conveyor-worker")["spec"]["replicas"] == 3
    run = tilt_stubs.evaluate(args={"keda": True})
    assert "conveyor-worker:scaledobject" in resource(run, "conveyor-worker").objects
    # With KEDA its HPA owns the replica count: no manual scale buttons.
    assert not [lr for lr in run.local_resources if lr.name.startswith("workers-scale")]


def test_a_bad_worker_count_stops_the_tiltfile() -> None:
    run = tilt_stubs.evaluate(args={"workers": "many"})
    assert run.failure == '--workers must be a whole number of worker pods, not "many"'
    assert run.error and not run.images
