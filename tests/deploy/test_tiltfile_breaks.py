"""Each Tiltfile contract check can fail: break one reference, in a copy of the
Tiltfile or of a file it relies on, and the contract names that exact problem.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tilt_stubs
from tilt_checks_deploy import contract_problems
from tilt_stubs import REPO

# (id, text in the Tiltfile, its replacement, Tiltfile args, the problem expected)
TILTFILE_BREAKS = [
    ("missing-yaml-file", "'deploy/dev/postgres.yaml'", "'deploy/dev/postgress.yaml'", {},
     "missing path: k8s_yaml('deploy/dev/postgress.yaml') names nothing in the repo"),
    ("missing-values-file", "'/values-dev.yaml'", "'/values-develop.yaml'", {},
     "missing path: helm(values)('deploy/helm/conveyor/values-develop.yaml')"),
    ("chart-does-not-render", "'config.logFormat=console'", "'config.logFormat=pretty'", {},
     "helm failed: helm template conveyor deploy/helm/conveyor"),
    ("missing-sync-source", "sync(p + '/src',", "sync(p + '/source',", {},
     "missing path: sync('services/api/source') names nothing in the repo"),
    ("image-not-in-chart", "'conveyor-worker': ('worker',", "'conveyor-workers': ('worker',", {},
     "image not used: docker_build('conveyor-workers') builds an image no deployed container"),
    ("chart-image-not-built", "'conveyor-worker': ('worker',", "'conveyor-workers': ('worker',",
     {}, "image not built: Deployment/conveyor-worker container 'worker' runs 'conveyor-worker:"),
    ("unknown-dockerfile-target", "target=target + '-tilt',", "target=target + '-dev',", {},
     "dockerfile: docker_build('conveyor-api') target 'api-dev' is not a stage of the Dockerfile"),
    ("not-the-repo-dockerfile", "dockerfile_contents=DOCKERFILE +",
     "dockerfile_contents=DOCKERFILE.replace('/app/services', '/srv/services') +", {},
     "dockerfile: docker_build('conveyor-api') builds from something other than the repo's"),
    ("dev-stage-adds-files", "        'USER root',\n",
     "        'USER root',\n        'COPY docs /app/docs',\n", {},
     "dockerfile: docker_build('conveyor-api') dev stage 'api-tilt' adds files"),
    ("sync-of-ignored-files", "'/src') for p in packages]\n",
     "'/src') for p in packages] + [sync('docs', '/app/docs')]\n", {},
     "sync: conveyor-api syncs 'docs', which .dockerignore keeps out of the build context"),
    ("wrong-sync-dest", "'/app/' + p + '/src') for p", "'/srv/' + p + '/src') for p", {},
     "sync dest: conveyor-api syncs 'services/api/src' to '/srv/services/api/src', "
     "but 'api-tilt' puts it at '/app/services/api/src'"),
    ("sync-not-writable", "'RUN chown -R %d:%d /app' % (RUNTIME_UID, RUNTIME_UID),", "'RUN true',",
     {}, "sync perms: '/app/services/api/src' in conveyor-api is not owned by uid 10001"),
    ("read-only-root-fs", "['readOnlyRootFilesystem'] = False", "['readOnlyRootFilesystem'] = True",
     {}, "read-only: Deployment/conveyor-worker container 'worker' runs conveyor-worker"),
    ("lock-not-in-fall-back-on", "['requirements/uv.txt', lock]", "['requirements/uv.txt']", {},
     "fall_back_on: conveyor-api does not fall back on 'requirements/api.txt'"),
    ("pyproject-not-in-fall-back-on", " + [p + '/pyproject.toml' for p in packages]),", "),", {},
     "fall_back_on: conveyor-api does not fall back on 'libs/common/pyproject.toml'"),
    ("no-watcher", "['api', 'worker', 'scheduler', 'flower']", "['api', 'worker', 'flower']", {},
     "reload: Deployment/conveyor-scheduler container 'scheduler' runs 'python -m "
     "conveyor.worker.scheduler' from live-updated conveyor-worker with no file watcher"),
    ("watches-too-little", "watch_command(container['command'], SYNCED_DIRS[repo])",
     "watch_command(container['command'], SYNCED_DIRS[repo][1:])", {},
     "reload: Deployment/conveyor-api container 'api': watchfiles watches "
     "['/app/services/api/src'], but live_update syncs"),
    ("watches-another-command", "watch_command(container['command'],",
     "watch_command(container['command'] + ['--debug'],", {},
     "reload: Deployment/conveyor-api container 'api': watchfiles runs 'python -m conveyor.api "
     "--debug', not 'python -m conveyor.api'"),
    ("port-clash", "port_forward(FLOWER_PORT, FLOWER_PORT,", "port_forward(API_PORT, FLOWER_PORT,",
     {"flower": True}, "port clash: localhost:8000 is forwarded by 'conveyor-api' and "
     "'conveyor-flower'"),
    ("bad-label", "name='redis')],\n             labels=['datastores']",
     "name='redis')],\n             labels=['data stores']", {},
     "bad label: resource 'conveyor-redis' label 'data stores'"),
    ("dependency-cycle", "resource_deps=['conveyor-postgres', 'conveyor-redis', 'conveyor-config']",
     "resource_deps=['conveyor-postgres', 'conveyor-redis', 'conveyor-api']", {},
     "dependency cycle: 'conveyor-migrate' waits for itself"),
    ("unknown-workload", "k8s_resource('conveyor-scheduler',", "k8s_resource('conveyor-schedule',",
     {}, "unknown workload: k8s_resource('conveyor-schedule') names no deployed workload"),
    ("wrong-port", "port_forward(API_PORT, API_PORT,", "port_forward(API_PORT, 8080,", {},
     "port-forward: conveyor-api forwards localhost:8000 to container port 8080, "
     "but Deployment/conveyor-api exposes [8000]"),
    ("wrong-flower-port", "port_forward(FLOWER_PORT, FLOWER_PORT,",
     "port_forward(FLOWER_PORT, 5556,", {"flower": True},
     "port-forward: conveyor-flower forwards localhost:5555 to container port 5556"),
    ("unknown-dep", "resource_deps=['conveyor-postgres',", "resource_deps=['conveyor-postgresql',",
     {}, "unknown dep: 'conveyor-migrate' depends on 'conveyor-postgresql', which is not"),
    ("app-before-migration",
     "objects_of(worker_resource),\n                 resource_deps=['conveyor-migrate']",
     "objects_of(worker_resource),\n                 resource_deps=['conveyor-redis']", {},
     "start order: conveyor-worker does not wait for conveyor-migrate"),
    ("secret-before-its-maker", "resource_deps=['loadgen-key'],", "resource_deps=['conveyor-api'],",
     {"loadgen": True}, "start order: conveyor-loadgen reads Secret 'conveyor-loadgen-key', "
     "made by local_resource 'loadgen-key', but does not wait for it"),
    ("no-labels", "name='redis')],\n             labels=['datastores'])", "name='redis')])", {},
     "no labels: resource 'conveyor-redis' has no labels"),
    ("uncategorized-object", "objects=objects_of('conveyor-config'),",
     "objects=objects_of('conveyor-config')[1:],", {},
     "uncategorized: ServiceAccount/conveyor belongs to no resource"),
    ("unknown-object", "append('%s:%s' %", "append('%s:%ss' %", {},
     "unknown object: k8s_resource 'conveyor-config' objects 'conveyor:secrets' matches 0"),
    ("button-targets-unknown-deployment", "deployment = 'deployment/' + worker_resource\n",
     "deployment = 'deployment/' + worker_resource + 's'\n", {}, "command: local_resource "
     "'workers-scale-up' targets deployment/conveyor-workers, which is not deployed"),
    ("button-runs-script-the-image-lacks", "python scripts/create_api_key.py --tenant %s",
     "python scripts/make_api_key.py --tenant %s", {}, "command: local_resource 'api-key' runs "
     "'scripts/make_api_key.py' in conveyor-api, which does not carry it"),
    ("button-runs-unknown-make-target", "cmd='make test',", "cmd='make tests',", {},
     "command: local_resource 'tests' runs `make tests`, which the Makefile lacks"),
    ("chart-object-changed", "k8s_yaml(encode_yaml_stream(objects))",
     "objects[0]['metadata']['labels'] = {}\nk8s_yaml(encode_yaml_stream(objects))", {},
     "chart edit: the Tiltfile changes NetworkPolicy/conveyor-api beyond the dev overrides"),
    # Tilt runs go-starlark, which has neither f-strings nor type annotations.
    ("go-starlark-no-f-strings", "RELEASE = 'conveyor'\n", "RELEASE = f'conveyor'\n", {},
     "must enable f-strings to use them"),
    ("go-starlark-no-annotations", "RELEASE = 'conveyor'\n", "RELEASE: str = 'conveyor'\n", {},
     "type annotations are not allowed"),
]  # fmt: skip

# (id, repo file, text in it, its replacement (None: the file is gone), the problem expected)
REPO_BREAKS = [
    (".dockerignore-drops-synced-code", ".dockerignore", "!services/api/src\n", "",
     "sync: conveyor-api syncs 'services/api/src', which .dockerignore keeps out"),
    ("dockerfile-renames-a-target", "Dockerfile", "FROM base AS api\n", "FROM base AS api-server\n",
     "dockerfile: docker_build('conveyor-api') target 'api-tilt' is not built on 'api'"),
    ("makefile-lacks-loadtest", "Makefile", "\nloadtest:", "\nload-test:",
     "command: local_resource 'loadtest' runs `make loadtest`, which the Makefile lacks"),
    ("no-dockerfile", "Dockerfile", "", None,
     "missing path: read_file('Dockerfile') names nothing in the repo"),
    ("chart-does-not-render", "deploy/helm/conveyor/Chart.yaml", "apiVersion: v2\n",
     "apiVersion: v9\n", "helm failed: helm template conveyor deploy/helm/conveyor"),
]  # fmt: skip


def assert_reported(problems: list[str], expected: str) -> None:
    assert any(expected in p for p in problems), (
        f"expected a problem with:\n  {expected}\ngot:\n  " + "\n  ".join(problems)
    )


@pytest.mark.parametrize(
    ("old", "new", "args", "expected"), [pytest.param(*b[1:], id=b[0]) for b in TILTFILE_BREAKS]
)
def test_a_broken_tiltfile_reference_is_reported(
    old: str, new: str, args: dict, expected: str
) -> None:
    text = (REPO / "Tiltfile").read_text()
    assert text.count(old) == 1, f"the Tiltfile no longer contains {old!r} exactly once"
    assert_reported(
        contract_problems(tilt_stubs.evaluate(text.replace(old, new), args=args)), expected
    )


@pytest.mark.parametrize(
    ("name", "old", "new", "expected"), [pytest.param(*b[1:], id=b[0]) for b in REPO_BREAKS]
)
def test_a_broken_repo_file_is_reported(
    tmp_path: Path, name: str, old: str, new: str | None, expected: str
) -> None:
    """The repo seen through symlinks, but for one file changed (or gone)."""
    parts = Path(name).parts
    for depth in range(len(parts)):  # real directories down to the file, the rest linked
        here, part = Path(*parts[:depth]), parts[depth]
        (tmp_path / here).mkdir(exist_ok=True)
        for entry in (REPO / here).iterdir():
            if entry.name != part:
                (tmp_path / here / entry.name).symlink_to(entry)
    if new is not None:
        text = (REPO / name).read_text()
        assert text.count(old) == 1, f"{name} no longer contains {old!r} exactly once"
        (tmp_path / name).write_text(text.replace(old, new))
    assert_reported(contract_problems(tilt_stubs.evaluate(root=tmp_path)), expected)
