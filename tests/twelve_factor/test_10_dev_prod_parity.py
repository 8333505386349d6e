"""Factor X, Dev/prod parity: keep development, staging and production alike.

- one set of commands: the Procfile's (what `make up` runs) equal the images'
  CMDs (the Dockerfile's api and worker targets) and the chart's commands;
- the same backing services everywhere: dev (`make up`, scripts/run_stack.py)
  and the tests (tests/support/engines.py) use the same LocalPostgres and
  LocalRedis classes, real PostgreSQL >= 15 and Redis >= 6 (asked over a real
  connection), and the chart's demo/dev datastores are the postgres and redis
  images, not substitutes;
- the Tiltfile deploys the production chart (deploy/helm/conveyor) unchanged
  apart from its documented dev overrides.
Related: tests/deploy/test_helm_processes.py::test_commands_equal_the_procfile,
tests/deploy/test_tiltfile.py (the Tiltfile's whole contract),
tests/container/test_images.py (the built images' CMD, container tier).
"""

from __future__ import annotations

import ast
import json
import re
import shlex

import helm_render
import psycopg
import redis
import tilt_stubs
import yaml

from tests.support.engines import ROOT, Engines, embedded_engines
from tests.support.processes import PROCFILE

# Procfile process -> (Dockerfile target whose CMD runs it, chart workload)
PROCESSES = {
    "web": ("api", ("Deployment", "api")),
    "worker": ("worker", ("Deployment", "worker")),
    "scheduler": (None, ("Deployment", "scheduler")),
    "release": (None, ("Job", "migrate")),
}
CHART = "deploy/helm/conveyor"


def image_cmds(dockerfile: str) -> dict[str, list[str]]:
    """The CMD each stage runs (inherited through FROM), exec form only."""
    cmds: dict[str, list[str]] = {}
    stage = None
    for keyword, rest in tilt_stubs._instructions(dockerfile):
        if keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            stage = words[2] if len(words) >= 3 else None
            if stage and words[0] in cmds:
                cmds[stage] = cmds[words[0]]
        elif keyword == "CMD" and stage:
            command = json.loads(rest)  # shell form would wrap the process in /bin/sh
            assert isinstance(command, list), f"CMD of {stage} is not exec form"
            cmds[stage] = command
    return cmds


def parity_problems(dockerfile: str, manifests: list[dict]) -> list[str]:
    cmds = image_cmds(dockerfile)
    problems = []
    for process, (target, (kind, component)) in PROCESSES.items():
        expected = shlex.split(PROCFILE[process])
        if target is not None and cmds.get(target) != expected:
            problems.append(f"{target} image CMD {cmds.get(target)} != Procfile {process}")
        container = helm_render.containers(helm_render.find(manifests, kind, component), False)[0]
        chart = [*container.get("command", []), *container.get("args", [])]
        if chart != expected:
            problems.append(f"chart {component} runs {chart} != Procfile {process}")
    return problems


def test_procfile_equals_the_images_and_the_chart() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for combo in ("default", "prod"):
        assert parity_problems(dockerfile, helm_render.rendered(combo)) == [], combo


def test_the_parity_check_flags_a_drifted_command() -> None:
    dockerfile = (
        (ROOT / "Dockerfile")
        .read_text()
        .replace(
            'CMD ["python", "-m", "conveyor.api"]',
            'CMD ["uvicorn", "conveyor.api.app:create_app", "--factory"]',
        )
    )
    assert parity_problems(dockerfile, helm_render.rendered("default")) == [
        "api image CMD ['uvicorn', 'conveyor.api.app:create_app', '--factory'] != Procfile web"
    ]


def _imports_from(path: str, module: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text())
    return {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == module
        for alias in node.names
    }


def _major(text: str) -> int:
    return int(re.match(r"\d+", text).group(0))  # type: ignore[union-attr]


def _versions(pg_url: str, redis_url: str) -> tuple[str, str]:
    with psycopg.connect(pg_url) as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        assert "PostgreSQL" in conn.execute("SELECT version()").fetchone()[0]  # type: ignore[index]
    info = redis.Redis.from_url(redis_url).info("server")
    return pg_version, info["redis_version"]


def test_dev_tests_and_prod_use_the_same_engines(engines: Engines) -> None:
    # `make up` and the tests start the same embedded engines.
    assert {"LocalPostgres", "LocalRedis"} <= _imports_from("scripts/run_stack.py", "local_engines")
    assert {"LocalPostgres", "LocalRedis"} <= _imports_from(
        "tests/support/engines.py", "local_engines"
    )
    versions = [_versions(engines.database_url, engines.redis_url)]
    if engines.source != "embedded":
        with embedded_engines() as (pg, rd):
            versions.append(_versions(pg.url, rd.url))
    for pg_version, redis_version in versions:
        assert _major(pg_version) >= 15, pg_version
        assert _major(redis_version) >= 6, redis_version
    # The cluster side (the chart's demo and Tilt) runs the real images.
    images = {}
    for name in ("postgres", "redis"):
        docs = list(yaml.safe_load_all((ROOT / "deploy" / "dev" / f"{name}.yaml").read_text()))
        found = [
            c["image"]
            for d in docs
            if d and d.get("kind") in {"StatefulSet", "Deployment"}
            for c in d["spec"]["template"]["spec"]["containers"]
        ]
        assert len(found) == 1, found
        images[name] = found[0]
    assert images["postgres"].split(":")[0] == "postgres"
    assert _major(images["postgres"].split(":")[1]) >= 15
    assert images["redis"].split(":")[0] == "redis"
    assert _major(images["redis"].split(":")[1]) >= 6
    demo = (ROOT / CHART / "values-demo.yaml").read_text()
    assert "deploy/dev/" in demo and "@conveyor-postgres:5432" in demo


def test_the_tiltfile_deploys_the_production_chart() -> None:
    run = tilt_stubs.evaluate()
    assert run.error is None and run.failure is None, run.error or run.failure
    [call] = run.helm_calls
    assert call.chart == CHART and call.error is None
    assert call.values == [f"{CHART}/values-dev.yaml"]
    chart_objects = {(o["kind"], o["metadata"]["name"]) for o in call.objects}
    deployed = {(o.kind, o.name) for o in run.k8s_objects}
    assert chart_objects <= deployed
    extra = {o.source for o in run.k8s_objects if (o.kind, o.name) not in chart_objects}
    assert extra == {"deploy/dev/postgres.yaml", "deploy/dev/redis.yaml"}, extra
    # The same production commands, under a file watcher in dev.
    for obj in run.k8s_objects:
        if obj.kind == "Deployment" and obj.name == "conveyor-api":
            [api] = [
                c for c in obj.obj["spec"]["template"]["spec"]["containers"] if c["name"] == "api"
            ]
            assert shlex.join(shlex.split(PROCFILE["web"])) in api["command"], api["command"]
