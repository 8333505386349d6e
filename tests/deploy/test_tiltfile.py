"""The Tiltfile's contract, checked without Tilt.

tilt_stubs.evaluate() runs the root Tiltfile with stubbed Tilt builtins (the
chart is really rendered by `helm template`, exactly as Tilt's helm() would);
the check_* functions below compare what it would build, deploy, sync and
forward with the repo, the Dockerfile and the rendered objects. Each returns a
list of problems, one line each, so that:

- the real Tiltfile, under every option combination, has no problems;
- a copy with one reference broken on purpose (TestBrokenReferences) reports
  that exact problem, which shows that each check can fail.

Needs helm on PATH (conftest.py fails every test here without it) and the
starlark-pyo3 package.
"""

from __future__ import annotations

import itertools
import os
import posixpath
import re
import shlex
from copy import deepcopy
from pathlib import Path
from typing import Any

import pytest
import tilt_stubs
from tilt_stubs import (
    REPO,
    TRIGGER_MODE_MANUAL,
    FallBackOn,
    ImageBuild,
    K8sObject,
    Run,
    Sync,
    TiltRun,
    context_inputs,
    dockerignore_excludes,
    image_placements,
    parse_dockerfile,
    stage_chain,
)

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod"}
COMPONENT = "app.kubernetes.io/component"
# Tilt's rule for resource labels.
LABEL_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
# `make` targets a button may name before they exist, and who adds them.
PENDING_MAKE_TARGETS = {"loadtest": "issue 8 (load tests)"}
# Chart components whose processes need the migrated schema.
SCHEMA_USERS = {"api", "worker", "scheduler"}


# --- Reading the recorded run ------------------------------------------------------


def pod_spec(obj: dict) -> dict | None:
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
    return (spec.get("template") or {}).get("spec")


def containers(obj: dict, init: bool = True) -> list[dict]:
    spec = pod_spec(obj) or {}
    return (spec.get("initContainers", []) if init else []) + spec.get("containers", [])


def image_repo(image: str) -> str:
    """'conveyor-api:0.1.0' -> 'conveyor-api' (Tilt matches images ignoring the tag)."""
    name = image.split("@")[0]
    head, _, last = name.rpartition("/")
    return (head + "/" if head else "") + last.split(":")[0]


def key(obj: dict) -> tuple[str, str]:
    return obj.get("kind", ""), obj.get("metadata", {}).get("name", "")


def workloads(run: TiltRun) -> dict[str, K8sObject]:
    """Objects Tilt turns into resources (they run pods), by name."""
    return {o.name: o for o in run.k8s_objects if o.kind in WORKLOAD_KINDS}


def chart_objects(run: TiltRun) -> list[dict]:
    return [obj for call in run.helm_calls for obj in call.objects]


def resource_name_of(run: TiltRun, workload: str) -> str:
    for r in run.k8s_resources:
        if r.workload == workload and r.new_name:
            return r.new_name
    return workload


def all_resources(run: TiltRun) -> dict[str, list[str]]:
    """Every resource Tilt would show, with its resource_deps."""
    wl = workloads(run)
    deps: dict[str, list[str]] = {resource_name_of(run, w): [] for w in wl}
    for r in run.k8s_resources:
        if r.workload in wl:
            deps[resource_name_of(run, r.workload)] = list(r.resource_deps)
        elif not r.workload and r.new_name:
            deps[r.new_name] = list(r.resource_deps)
    for lr in run.local_resources:
        deps[lr.name] = list(lr.resource_deps)
    return deps


def waits_for(run: TiltRun, resource: str) -> set[str]:
    """The resources `resource` transitively waits for."""
    deps = all_resources(run)
    seen: set[str] = set()
    todo = list(deps.get(resource, []))
    while todo:
        dep = todo.pop()
        if dep not in seen:
            seen.add(dep)
            todo.extend(deps.get(dep, []))
    return seen


def dockerfile_stages(image: ImageBuild) -> dict[str, tilt_stubs.Stage]:
    text = image.dockerfile_text
    return parse_dockerfile(text) if text is not None else {}


def builds_production_target(image: ImageBuild) -> bool:
    """The build's target is, or is built FROM, the Dockerfile's target for
    the image (conveyor-api -> api): the Dockerfile mirrors image names."""
    chain = [s.name for s in stage_chain(dockerfile_stages(image), image.target)]
    return image.ref.removeprefix("conveyor-") in chain


def _abs(path: Path) -> Path:
    """Absolute and normalized, without following symlinks."""
    return Path(os.path.normpath(os.path.abspath(path)))


def cmd_text(cmd: Any) -> str:
    return cmd if isinstance(cmd, str) else shlex.join(str(c) for c in cmd)


def runtime_uids(run: TiltRun, repo: str) -> set[str]:
    """The uids the long-running containers of an image run as."""
    uids = set()
    for o in run.k8s_objects:
        if o.kind not in LONG_RUNNING:
            continue
        pod = pod_spec(o.obj) or {}
        for c in containers(o.obj, init=False):
            if image_repo(c["image"]) == repo:
                uid = (c.get("securityContext") or {}).get("runAsUser") or (
                    pod.get("securityContext") or {}
                ).get("runAsUser")
                if uid is not None:
                    uids.add(str(uid))
    return uids


# --- The checks ------------------------------------------------------------------------


def check_evaluation(run: TiltRun) -> list[str]:
    """The Tiltfile loads, and helm renders the chart it names."""
    problems = []
    if run.error:
        problems.append(f"evaluation failed: {run.error.strip()}")
    for call in run.helm_calls:
        if call.error:
            problems.append(f"helm failed: {shlex.join(call.argv)}: {call.error}")
    return problems


def check_paths(run: TiltRun) -> list[str]:
    """Every path the Tiltfile names exists (relative to the Tiltfile)."""
    return [
        f"missing path: {builtin}({path!r}) names nothing in the repo"
        for builtin, path in run.paths
        if not (run.root / path).exists()
    ]


def check_images(run: TiltRun) -> list[str]:
    """Every image built is run by the deployed YAML, every chart image is
    built, and each build is the Dockerfile's production target for it."""
    problems = []
    used: dict[str, list[str]] = {}
    for o in run.k8s_objects:
        for c in containers(o.obj):
            used.setdefault(image_repo(c["image"]), []).append(f"{o} container {c['name']!r}")
    built = {img.ref for img in run.images}
    for img in run.images:
        if img.ref not in used:
            problems.append(
                f"image not used: docker_build({img.ref!r}) builds an image "
                f"no deployed container runs (images in use: {sorted(used)})"
            )
    for obj in chart_objects(run):
        for c in containers(obj):
            if image_repo(c["image"]) not in built:
                problems.append(
                    f"image not built: {obj['kind']}/{obj['metadata']['name']} "
                    f"container {c['name']!r} runs {c['image']!r}, which "
                    "no docker_build builds (Tilt would try to pull it)"
                )
    repo_dockerfile = run.root / "Dockerfile"
    for img in run.images:
        text = img.dockerfile_text
        if text is None:
            problems.append(
                f"dockerfile: docker_build({img.ref!r}) has no Dockerfile at {img.dockerfile!r}"
            )
            continue
        if img.dockerfile_contents is not None and not (
            repo_dockerfile.is_file() and text.startswith(repo_dockerfile.read_text())
        ):
            problems.append(
                f"dockerfile: docker_build({img.ref!r}) dockerfile_contents "
                "is not the repo's Dockerfile (plus dev additions after it)"
            )
        stages = parse_dockerfile(text)
        if img.target not in stages:
            problems.append(
                f"dockerfile: docker_build({img.ref!r}) target {img.target!r} "
                f"is not a stage of the Dockerfile (stages: {sorted(stages)})"
            )
            continue
        chain = [s.name for s in stage_chain(stages, img.target)]
        production = img.ref.removeprefix("conveyor-")
        if production not in chain:
            problems.append(
                f"dockerfile: docker_build({img.ref!r}) target {img.target!r} is not "
                f"built on the Dockerfile's {production!r} target (chain: {chain})"
            )
            continue
        for stage in stage_chain(stages, img.target)[chain.index(production) + 1 :]:
            if stage.copies:
                problems.append(
                    f"dockerfile: docker_build({img.ref!r}) dev stage "
                    f"{stage.name!r} adds files the production image does not have"
                )
    return problems


def check_live_update(run: TiltRun) -> list[str]:
    """Each sync maps a real source directory to the path where the target
    puts that code, the runtime user can write there, and changes that need a
    new image fall back to a full build."""
    problems = []
    for img in run.images:
        if not img.live_update:
            continue
        ranks = [
            0 if isinstance(s, FallBackOn) else 1 if isinstance(s, Sync) else 2
            for s in img.live_update
        ]
        if ranks != sorted(ranks):
            problems.append(
                f"live_update order: {img.ref} must list fall_back_on, then sync, then run steps"
            )
        stages = dockerfile_stages(img)
        if img.target not in stages:
            continue  # reported by check_images
        chain = stage_chain(stages, img.target)
        placements = image_placements(stages, img.target)
        context = _abs(run.root / img.context)
        uids = runtime_uids(run, img.ref)
        chowned = [
            (spec.split(":")[0], posixpath.normpath(path))
            for stage in chain
            for command in stage.runs
            for spec, path in _chowns(command)
        ]
        for s in img.syncs:
            local = _abs(run.root / s.local_path)
            if not local.exists():
                continue  # reported by check_paths
            if not local.is_relative_to(context):
                problems.append(
                    f"sync: {img.ref} syncs {s.local_path!r}, "
                    f"outside its build context {img.context!r}"
                )
                continue
            rel = local.relative_to(context).as_posix()
            if dockerignore_excludes(context, rel):
                problems.append(
                    f"sync: {img.ref} syncs {s.local_path!r}, which .dockerignore "
                    "keeps out of the build context (Tilt never syncs it)"
                )
            remote = posixpath.normpath(s.remote_path)
            expected = None
            best = -1
            for src, dest, _copy in placements:
                if (rel == src or rel.startswith(src + "/")) and len(src) > best:
                    expected, best = dest + rel[len(src) :], len(src)
            if expected is None:
                problems.append(
                    f"sync dest: {img.ref} syncs {s.local_path!r} to {s.remote_path!r}, but the "
                    f"Dockerfile's {img.target!r} target does not copy {rel!r} into the image"
                )
                continue
            if remote != expected:
                problems.append(
                    f"sync dest: {img.ref} syncs {s.local_path!r} to {s.remote_path!r}, "
                    f"but the Dockerfile's {img.target!r} target puts it at {expected!r}"
                )
                continue
            owners = {
                copy.chown.split(":")[0]
                for src, dest, copy in placements
                if copy.chown and (remote == dest or remote.startswith(dest + "/"))
            } | {
                uid
                for uid, path in chowned
                if remote == path or remote.startswith(path.rstrip("/") + "/")
            }
            for uid in sorted(uids - owners):
                problems.append(
                    f"sync perms: {remote!r} in {img.ref} is not owned by uid {uid}, which "
                    "its containers run as: live_update's tar cannot replace the files"
                )
        # Inputs a sync cannot deliver: the locks the image installs, and the
        # pyproject.toml of each synced package.
        fall_back = {posixpath.normpath(p) for p in img.fall_back_on}
        for path in img.fall_back_on:
            if not _abs(run.root / path).is_relative_to(context):
                problems.append(
                    f"fall_back_on: {img.ref} falls back on {path!r}, outside its build context"
                )
        needed = {
            posixpath.normpath(src)
            for copy in context_inputs(stages, img.target)
            for src in copy.sources
            if src.startswith("requirements/")
        }
        for s in img.syncs:
            # A package's code sits in <package>/src, beside its pyproject.toml.
            package, src = posixpath.split(posixpath.normpath(s.local_path))
            if src == "src" and (run.root / package / "pyproject.toml").is_file():
                needed.add(posixpath.join(package, "pyproject.toml"))
        for path in sorted(needed - fall_back):
            problems.append(
                f"fall_back_on: {img.ref} does not fall back on "
                f"{path!r}: a change there needs a new image, not a sync"
            )
        # Every running container of the image must accept the writes.
        dests = [s.remote_path for s in img.syncs]
        for o in run.k8s_objects:
            if o.kind not in LONG_RUNNING:
                continue
            for c in containers(o.obj, init=False):
                if image_repo(c["image"]) == img.ref and (c.get("securityContext") or {}).get(
                    "readOnlyRootFilesystem"
                ):
                    problems.append(
                        f"read-only: {o} container {c['name']!r} runs {img.ref} with a "
                        f"read-only root file system: live_update cannot write {dests}"
                    )
    return problems


def _chowns(command: str) -> list[tuple[str, str]]:
    """(owner, path) for each `chown -R owner path...` in a RUN command."""
    found = []
    for part in re.split(r"&&|;|\|\|", command):
        words = shlex.split(part)
        if words[:1] == ["chown"] and "-R" in words:
            args = [w for w in words[1:] if not w.startswith("-")]
            found += [(args[0], path) for path in args[1:]]
    return found


WATCHFILES_VALUE_OPTIONS = {
    "--ignore-paths", "--target-type", "--filter", "--args", "--verbosity",
    "--sigint-timeout", "--grace-period", "--sigkill-timeout",
}  # fmt: skip


def parse_watchfiles(argv: list[str]) -> tuple[str, list[str]] | None:
    """(target command, watched paths) of a `watchfiles ... 'cmd' path...` argv."""
    if not argv or posixpath.basename(argv[0]) != "watchfiles":
        return None
    positional = []
    words = iter(argv[1:])
    for word in words:
        if word.startswith("--"):
            if word in WATCHFILES_VALUE_OPTIONS:
                next(words, None)
            continue
        positional.append(word)
    return (positional[0], positional[1:]) if positional else None


def check_reload(run: TiltRun) -> list[str]:
    """Every chart process that imports our code, in a live-updated image,
    runs under watchfiles: the chart's own command, watching exactly the
    synced directories, with watchfiles installed by the image's lock."""
    problems = []
    synced = {img.ref: img for img in run.images if img.syncs}
    final = {key(o.obj): o.obj for o in run.k8s_objects}
    for obj in chart_objects(run):
        if obj["kind"] not in LONG_RUNNING or key(obj) not in final:
            continue
        for c in containers(obj, init=False):
            img = synced.get(image_repo(c["image"]))
            command = c.get("command", []) + c.get("args", [])
            if (
                img is None
                or command[:2] != ["python", "-m"]
                or not command[2].startswith("conveyor.")
            ):
                continue
            where = f"{obj['kind']}/{obj['metadata']['name']} container {c['name']!r}"
            dev = next(d for d in containers(final[key(obj)], init=False) if d["name"] == c["name"])
            watch = parse_watchfiles(dev.get("command", []) + dev.get("args", []))
            if watch is None:
                problems.append(
                    f"reload: {where} runs {shlex.join(command)!r} from live-updated "
                    f"{img.ref} with no file watcher: synced code would never run"
                )
                continue
            target, paths = watch
            if shlex.split(target) != command:
                problems.append(
                    f"reload: {where}: watchfiles runs {target!r}, "
                    f"not the chart's {shlex.join(command)!r}"
                )
            dests = sorted(posixpath.normpath(s.remote_path) for s in img.syncs)
            if sorted(posixpath.normpath(p) for p in paths) != dests:
                problems.append(
                    f"reload: {where}: watchfiles watches {paths}, but live_update syncs {dests}"
                )
            stages = dockerfile_stages(img)
            if not builds_production_target(img):
                continue  # reported by check_images
            locks = [
                run.root / src
                for copy in context_inputs(stages, img.target)
                for src in copy.sources
                if src.startswith("requirements/") and (run.root / src).is_file()
            ]
            if not any(re.search(r"^watchfiles==", p.read_text(), re.M) for p in locks):
                problems.append(
                    f"reload: {where} runs watchfiles, which {img.ref}'s locks do not install"
                )
    return problems


def check_chart_edits(run: TiltRun) -> list[str]:
    """The Tiltfile deploys every chart object, changing nothing but the dev
    overrides (the watchfiles command, a writable root FS for live_update)."""
    problems = []
    synced = {img.ref for img in run.images if img.syncs}
    final = {key(o.obj): o for o in run.k8s_objects}
    chart_keys = set()
    for obj in chart_objects(run):
        chart_keys.add(key(obj))
        found = final.get(key(obj))
        if found is None:
            problems.append(
                f"chart edit: {obj['kind']}/{obj['metadata']['name']} "
                "is rendered but never deployed"
            )
            continue
        dev = deepcopy(found.obj)
        for c, d in zip(containers(obj), containers(dev), strict=False):
            if image_repo(c["image"]) in synced and obj["kind"] in LONG_RUNNING:
                if parse_watchfiles(d.get("command", [])):
                    d["command"] = c.get("command")
                if (d.get("securityContext") or {}).get("readOnlyRootFilesystem") is False:
                    d["securityContext"]["readOnlyRootFilesystem"] = (
                        c.get("securityContext") or {}
                    ).get("readOnlyRootFilesystem")
        if dev != obj:
            problems.append(
                f"chart edit: the Tiltfile changes {obj['kind']}/{obj['metadata']['name']} "
                "beyond the dev overrides (watchfiles command, writable root FS for live_update)"
            )
    for o in run.k8s_objects:
        if not (run.root / o.source).is_file() and key(o.obj) not in chart_keys:
            problems.append(
                f"chart edit: {o} is deployed but comes from neither the chart nor a YAML file"
            )
    return problems


def check_resources(run: TiltRun) -> list[str]:
    """k8s_resource names real workloads and objects, every object lands in
    a resource, resources carry labels, resource_deps name resources."""
    problems = []
    wl = workloads(run)
    names = [o.name for o in run.k8s_objects if o.kind in WORKLOAD_KINDS]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"duplicate workload: several workloads are named {name!r}")
    configured = set()
    for r in run.k8s_resources:
        if r.workload:
            if r.workload not in wl:
                problems.append(
                    f"unknown workload: k8s_resource({r.workload!r}) names no "
                    f"workload in the deployed YAML (workloads: {sorted(wl)})"
                )
            configured.add(r.workload)
        elif not (r.new_name and r.objects):
            problems.append(
                "k8s_resource: a resource without a workload needs new_name and objects"
            )
    for name, o in sorted(wl.items()):
        if name not in configured:
            problems.append(
                f"unconfigured workload: {o} has no "
                "k8s_resource() (so no labels and no start order)"
            )

    # Objects: Tilt groups a Service with the workload whose pods it selects;
    # everything else needs an objects= entry or lands in "uncategorized".
    pod_labels = [
        (o.obj.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {})
        for o in wl.values()
    ]
    auto = {
        key(o.obj)
        for o in run.k8s_objects
        if o.kind == "Service"
        and (selector := o.obj.get("spec", {}).get("selector"))
        and any(selector.items() <= labels.items() for labels in pod_labels)
    }
    claimed: dict[tuple[str, str], str] = {}
    for r in run.k8s_resources:
        for selector in r.objects:
            parts = selector.lower().split(":")
            matches = [
                o
                for o in run.k8s_objects
                if o.name.lower() == parts[0]
                and (len(parts) < 2 or o.kind.lower() == parts[1])
                and (
                    len(parts) < 3 or (o.obj["metadata"].get("namespace") or "default") == parts[2]
                )
            ]
            if not matches:
                problems.append(
                    f"unknown object: k8s_resource {r.name!r} "
                    f"objects {selector!r} matches nothing deployed"
                )
            elif len(matches) > 1:
                problems.append(
                    f"ambiguous object: k8s_resource {r.name!r} objects "
                    f"{selector!r} matches {[str(m) for m in matches]}"
                )
            elif key(matches[0].obj) in auto or matches[0].kind in WORKLOAD_KINDS:
                problems.append(
                    f"object taken: k8s_resource {r.name!r} objects {selector!r} is "
                    "already grouped by Tilt (a workload, or a Service that selects one)"
                )
            elif key(matches[0].obj) in claimed:
                problems.append(
                    f"object taken: {selector!r} is in both "
                    f"{claimed[key(matches[0].obj)]!r} and {r.name!r}"
                )
            else:
                claimed[key(matches[0].obj)] = r.name
    for o in run.k8s_objects:
        if o.kind not in WORKLOAD_KINDS and key(o.obj) not in auto and key(o.obj) not in claimed:
            problems.append(
                f"uncategorized: {o} belongs to no resource "
                "(Tilt's 'uncategorized', with no start order)"
            )

    for r in [*run.k8s_resources, *run.local_resources]:
        if not r.labels:
            problems.append(f"no labels: resource {r.name!r} has no labels")
        for label in r.labels:
            if not LABEL_RE.match(label):
                problems.append(
                    f"bad label: resource {r.name!r} label {label!r} is not a valid Tilt label"
                )

    deps = all_resources(run)
    seen = [lr.name for lr in run.local_resources] + [
        r.new_name for r in run.k8s_resources if r.new_name
    ]
    for name in sorted({n for n in seen if seen.count(n) > 1}):
        problems.append(f"duplicate resource: {name!r} is defined twice")
    for name, resource_deps in deps.items():
        for dep in resource_deps:
            if dep not in deps:
                problems.append(
                    f"unknown dep: {name!r} depends on {dep!r}, which "
                    f"is not a resource (resources: {sorted(deps)})"
                )
        if name in waits_for(run, name):
            problems.append(f"dependency cycle: {name!r} waits for itself")
    return problems


def check_port_forwards(run: TiltRun) -> list[str]:
    """Port-forwards reach ports the workload's containers expose, and no two
    resources forward the same local port."""
    problems = []
    wl = workloads(run)
    local_ports: dict[int, str] = {}
    for r in run.k8s_resources:
        for pf in r.port_forwards:
            if pf.local_port in local_ports:
                problems.append(
                    f"port clash: localhost:{pf.local_port} is forwarded "
                    f"by {local_ports[pf.local_port]!r} and {r.name!r}"
                )
            local_ports[pf.local_port] = r.name
            if r.workload not in wl:
                continue
            exposed = sorted(
                p["containerPort"]
                for c in containers(wl[r.workload].obj, init=False)
                for p in c.get("ports", [])
            )
            port = pf.container_port or pf.local_port
            if port not in exposed:
                problems.append(
                    f"port-forward: {r.name} forwards localhost:{pf.local_port} to "
                    f"container port {port}, but {wl[r.workload]} exposes {exposed}"
                )
    return problems


def check_start_order(run: TiltRun) -> list[str]:
    """Data stores, then migrations, then the processes that need the schema;
    and anything reading a Secret made by a local_resource waits for it."""
    problems = []
    wl = workloads(run)
    datastores = sorted(
        resource_name_of(run, n) for n, o in wl.items() if (run.root / o.source).is_file()
    )
    chart = {key(obj) for obj in chart_objects(run)}
    migrations = sorted(
        resource_name_of(run, n) for n, o in wl.items() if o.kind == "Job" and key(o.obj) in chart
    )
    if run.helm_calls and not migrations:
        problems.append("start order: the chart renders no migration Job to wait for")
    for migration in migrations:
        missing = sorted(set(datastores) - waits_for(run, migration))
        if missing:
            problems.append(f"start order: {migration} does not wait for the data stores {missing}")
    for name, o in sorted(wl.items()):
        labels = o.obj.get("metadata", {}).get("labels") or {}
        if key(o.obj) in chart and labels.get(COMPONENT) in SCHEMA_USERS:
            resource = resource_name_of(run, name)
            for migration in migrations:
                if migration not in waits_for(run, resource):
                    problems.append(f"start order: {resource} does not wait for {migration}")
    made_by = {}
    for lr in run.local_resources:
        for secret in re.findall(r"create secret generic ([a-z0-9.-]+)", cmd_text(lr.cmd)):
            made_by[secret] = lr.name
    deployed = {key(o.obj) for o in run.k8s_objects}
    for name, o in sorted(wl.items()):
        for secret, kind in _config_refs(o.obj):
            if (kind, secret) in deployed:
                continue
            if kind == "Secret" and secret in made_by:
                if made_by[secret] not in waits_for(run, resource_name_of(run, name)):
                    problems.append(
                        f"start order: {resource_name_of(run, name)} reads Secret {secret!r}, "
                        f"made by local_resource {made_by[secret]!r}, but does not wait for it"
                    )
            else:
                problems.append(
                    f"missing {kind}: {o} reads {kind} {secret!r}, which nothing deploys or creates"
                )
    return problems


def _config_refs(obj: dict) -> list[tuple[str, str]]:
    """(name, kind) of the non-optional Secrets and ConfigMaps a pod reads."""
    refs = []
    for c in containers(obj):
        for source in c.get("envFrom", []):
            for field, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
                if field in source and not source[field].get("optional"):
                    refs.append((source[field]["name"], kind))
        for var in c.get("env", []):
            ref = var.get("valueFrom", {})
            for field, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                if field in ref and not ref[field].get("optional"):
                    refs.append((ref[field]["name"], kind))
    return refs


def makefile_targets(root: Path) -> set[str]:
    makefile = root / "Makefile"
    if not makefile.is_file():
        return set()
    return set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", makefile.read_text(), re.M))


def check_commands(run: TiltRun) -> list[str]:
    """Buttons name deployed Deployments and containers, scripts the image
    carries, and Makefile targets."""
    problems = []
    final = {o.name: o for o in run.k8s_objects if o.kind == "Deployment"}
    builds = {img.ref: img for img in run.images}
    targets = makefile_targets(run.root)
    for lr in run.local_resources:
        text = cmd_text(lr.cmd)
        for name in sorted(set(re.findall(r"\b(?:deployment|deploy)/([a-z0-9.-]+)", text))):
            if name not in final:
                problems.append(
                    f"command: local_resource {lr.name!r} targets "
                    f"deployment/{name}, which is not deployed"
                )
        for name, container, script in sorted(
            set(
                re.findall(
                    r"exec (?:deployment|deploy)/([a-z0-9.-]+) -c ([a-z0-9-]+)(?: -- python "
                    r"([\w./-]+\.py))?",
                    text,
                )
            )
        ):
            found = (
                [c for c in containers(final[name].obj, init=False) if c["name"] == container]
                if name in final
                else []
            )
            if name in final and not found:
                problems.append(
                    f"command: local_resource {lr.name!r} execs into "
                    f"container {container!r}, not in deployment/{name}"
                )
            if found and script:
                img = builds.get(image_repo(found[0]["image"]))
                stages = dockerfile_stages(img) if img else {}
                if img and builds_production_target(img):
                    workdir = stage_chain(stages, img.target)[-1].workdir
                    dests = {dest for _src, dest, _copy in image_placements(stages, img.target)}
                    if posixpath.join(workdir, script) not in dests:
                        problems.append(
                            f"command: local_resource {lr.name!r} runs {script!r} in {img.ref}, "
                            f"which does not carry it at {posixpath.join(workdir, script)!r}"
                        )
        for target in re.findall(r"\bmake ([A-Za-z0-9_.-]+)", text):
            if target not in targets and target not in PENDING_MAKE_TARGETS:
                problems.append(
                    f"command: local_resource {lr.name!r} runs "
                    f"`make {target}`, which the Makefile lacks"
                )
    return problems


CHECKS = [
    check_evaluation,
    check_paths,
    check_images,
    check_live_update,
    check_reload,
    check_chart_edits,
    check_resources,
    check_port_forwards,
    check_start_order,
    check_commands,
]


def contract_problems(run: TiltRun) -> list[str]:
    return [problem for check in CHECKS for problem in check(run)]


# --- Option combinations -----------------------------------------------------------

OPTION_COMBOS = [
    {"workers": workers, "keda": keda, "flower": flower, "loadgen": loadgen}
    for workers, keda, flower, loadgen in itertools.product(
        ["1", "3"], [False, True], [False, True], [False, True]
    )
]


def combo_id(args: dict) -> str:
    on = [k for k in ("keda", "flower", "loadgen") if args.get(k)]
    return f"workers={args['workers']}" + "".join(f"+{k}" for k in on)


def pending_problems(args: dict) -> set[str]:
    """Problems expected until another issue lands: the load generator needs
    the Dockerfile's `loadgen` target (issue 8). Anything else still fails."""
    dockerfile = REPO / "Dockerfile"
    stages = parse_dockerfile(dockerfile.read_text()) if dockerfile.is_file() else {}
    if args.get("loadgen") and "loadgen" not in stages:
        return {
            "dockerfile: docker_build('conveyor-loadgen') target 'loadgen' "
            f"is not a stage of the Dockerfile (stages: {sorted(stages)})"
        }
    return set()


@pytest.fixture(scope="module")
def tiltfile_text() -> str:
    path = REPO / "Tiltfile"
    assert path.is_file(), "no Tiltfile at the repo root"
    return path.read_text()


@pytest.fixture(scope="module")
def default_run(tiltfile_text: str) -> TiltRun:
    try:
        return tilt_stubs.evaluate(tiltfile_text)
    except RuntimeError as exc:  # starlark-pyo3 missing: fail, never skip
        pytest.fail(str(exc), pytrace=False)


def test_the_dockerfile_exists() -> None:
    """The live_update checks read the Dockerfile's COPY lines: without it they cannot pass."""
    assert (REPO / "Dockerfile").is_file(), (
        "no Dockerfile at the repo root: the Tiltfile builds its `api` and `worker` targets"
    )


def test_default_options_have_no_problems(default_run: TiltRun) -> None:
    problems = contract_problems(default_run)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("args", OPTION_COMBOS, ids=combo_id)
def test_every_option_combination_keeps_the_contract(tiltfile_text: str, args: dict) -> None:
    run = tilt_stubs.evaluate(tiltfile_text, args=args)
    problems = set(contract_problems(run))
    expected = pending_problems(args)
    assert problems == expected, "\n".join(sorted(problems ^ expected))


# --- What the dev loop promises ----------------------------------------------------


def resource(run: TiltRun, name: str):
    found = [r for r in [*run.k8s_resources, *run.local_resources] if r.name == name]
    assert len(found) == 1, f"expected one resource {name!r}, found {len(found)}"
    return found[0]


def deployed(run: TiltRun, kind: str, name: str) -> dict:
    found = [o.obj for o in run.k8s_objects if o.kind == kind and o.name == name]
    assert len(found) == 1, f"expected one {kind}/{name} deployed, found {len(found)}"
    return found[0]


def test_it_builds_the_api_and_worker_targets_of_the_root_dockerfile(default_run: TiltRun) -> None:
    builds = {img.ref: img for img in default_run.images}
    assert set(builds) == {"conveyor-api", "conveyor-worker"}
    for ref, target in (("conveyor-api", "api"), ("conveyor-worker", "worker")):
        img = builds[ref]
        assert img.context == "."
        chain = [s.name for s in stage_chain(parse_dockerfile(img.dockerfile_text), img.target)]
        assert target in chain, chain
        assert img.dockerfile_text.startswith((REPO / "Dockerfile").read_text())


def test_live_update_syncs_service_and_common_code(default_run: TiltRun) -> None:
    syncs = {img.ref: {s.local_path for s in img.syncs} for img in default_run.images}
    assert syncs == {
        "conveyor-api": {"libs/common/src", "services/api/src"},
        "conveyor-worker": {"libs/common/src", "services/worker/src"},
    }
    for img in default_run.images:
        assert not [s for s in img.live_update if isinstance(s, Run)], (
            "processes restart by watchfiles, not run()"
        )
        assert {
            "requirements/api.txt" if img.ref == "conveyor-api" else "requirements/worker.txt"
        } <= set(img.fall_back_on)


def test_the_api_reloads_and_the_worker_and_scheduler_restart(default_run: TiltRun) -> None:
    for name, process in (
        ("conveyor-api", "python -m conveyor.api"),
        ("conveyor-worker", "python -m conveyor.worker"),
        ("conveyor-scheduler", "python -m conveyor.worker.scheduler"),
    ):
        container = containers(deployed(default_run, "Deployment", name), init=False)[0]
        watch = parse_watchfiles(container["command"])
        assert watch is not None and watch[0] == process, container["command"]
    # The one-off migration and the API's schema wait keep the chart's commands.
    job = deployed(default_run, "Job", "conveyor-migrate")
    assert containers(job)[0]["command"] == ["python", "scripts/migrate.py"]
    api = deployed(default_run, "Deployment", "conveyor-api")
    assert pod_spec(api)["initContainers"][0]["command"] == [
        "python",
        "-m",
        "conveyor.api.wait_for_schema",
    ]


def test_it_deploys_the_chart_with_dev_values_and_a_plain_migration_job(
    default_run: TiltRun,
) -> None:
    (call,) = default_run.helm_calls
    assert call.chart == "deploy/helm/conveyor" and call.name == "conveyor"
    assert call.values == ["deploy/helm/conveyor/values-dev.yaml"]
    job = deployed(default_run, "Job", "conveyor-migrate")
    assert "helm.sh/hook" not in (job["metadata"].get("annotations") or {}), "Tilt skips Helm hooks"
    sources = {o.source for o in default_run.k8s_objects}
    assert {"deploy/dev/postgres.yaml", "deploy/dev/redis.yaml"} <= sources


def test_start_order_and_port_forwards(default_run: TiltRun) -> None:
    assert {"conveyor-postgres", "conveyor-redis"} <= waits_for(default_run, "conveyor-migrate")
    for name in ("conveyor-api", "conveyor-worker", "conveyor-scheduler"):
        assert "conveyor-migrate" in waits_for(default_run, name)
    forwards = {
        (pf.local_port, pf.container_port)
        for pf in resource(default_run, "conveyor-api").port_forwards
    }
    assert (8000, 8000) in forwards


def test_buttons_run_the_tests_a_load_test_and_scale_the_workers(default_run: TiltRun) -> None:
    expected = {
        "tests": "make test",
        "loadtest": "make loadtest",
        "workers-scale-up": "scale deployment/conveyor-worker --replicas=",
        "workers-scale-down": "scale deployment/conveyor-worker --replicas=",
    }
    for name, command in expected.items():
        button = resource(default_run, name)
        assert command in cmd_text(button.cmd), button.cmd
        assert button.auto_init is False and button.trigger_mode == TRIGGER_MODE_MANUAL, name
    # What `tilt ci` waits for: one-shot tasks that run at start.
    for name in ("api-key", "smoke-test"):
        assert resource(default_run, name).auto_init is True


def test_the_smoke_test_is_valid_python() -> None:
    run = tilt_stubs.evaluate()
    argv = resource(run, "smoke-test").cmd
    command = argv[argv.index("--") + 1 :]
    assert command[:2] == ["python", "-c"], argv
    script = command[2]
    compile(script, "smoke-test", "exec")
    assert '"kind": "hash"' in script


def test_options(tiltfile_text: str) -> None:
    run = tilt_stubs.evaluate(tiltfile_text)
    assert {name: d.type for name, d in run.config_defs.items() if not d.args} == {
        "workers": "string",  # Tilt has no define_int: --workers is parsed and checked
        "keda": "bool",
        "flower": "bool",
        "loadgen": "bool",
    }
    run = tilt_stubs.evaluate(tiltfile_text, args={"workers": "3"})
    assert deployed(run, "Deployment", "conveyor-worker")["spec"]["replicas"] == 3

    run = tilt_stubs.evaluate(tiltfile_text, args={"keda": True})
    assert "conveyor-worker:scaledobject" in resource(run, "conveyor-worker").objects
    assert not [lr for lr in run.local_resources if lr.name.startswith("workers-scale")], (
        "with KEDA its HPA owns the replica count: no manual scale buttons"
    )

    run = tilt_stubs.evaluate(tiltfile_text, args={"flower": True})
    assert [pf.local_port for pf in resource(run, "conveyor-flower").port_forwards] == [5555]

    run = tilt_stubs.evaluate(tiltfile_text, args={"loadgen": True})
    assert [pf.local_port for pf in resource(run, "conveyor-loadgen").port_forwards] == [8089]
    assert "conveyor-api" in waits_for(run, "conveyor-loadgen")


def test_a_bad_worker_count_stops_the_tiltfile(tiltfile_text: str) -> None:
    run = tilt_stubs.evaluate(tiltfile_text, args={"workers": "many"})
    assert run.failure == '--workers must be a whole number of worker pods, not "many"'


# --- Each check fails when its reference breaks ------------------------------------------

# (id, text in the Tiltfile, its replacement, Tiltfile args, the problem expected)
BREAKS = [
    (
        "missing-yaml-file",
        "k8s_yaml(['deploy/dev/postgres.yaml'",
        "k8s_yaml(['deploy/dev/postgress.yaml'",
        {},
        "missing path: k8s_yaml('deploy/dev/postgress.yaml') names nothing in the repo",
    ),
    (
        "missing-values-file",
        "values=[CHART + '/values-dev.yaml']",
        "values=[CHART + '/values-develop.yaml']",
        {},
        "missing path: helm(values)('deploy/helm/conveyor/values-develop.yaml') "
        "names nothing in the repo",
    ),
    (
        "chart-does-not-render",
        "'config.logFormat=console',",
        "'config.logFormat=pretty',",
        {},
        "helm failed: helm template conveyor deploy/helm/conveyor",
    ),
    (
        "missing-sync-source",
        "syncs = [sync(p + '/src',",
        "syncs = [sync(p + '/source',",
        {},
        "missing path: sync('services/api/source') names nothing in the repo",
    ),
    (
        "image-not-in-chart",
        "'conveyor-worker': ('worker',",
        "'conveyor-workers': ('worker',",
        {},
        "image not used: docker_build('conveyor-workers') "
        "builds an image no deployed container runs",
    ),
    (
        "chart-image-not-built",
        "'conveyor-worker': ('worker',",
        "'conveyor-workers': ('worker',",
        {},
        "image not built: Deployment/conveyor-worker container 'worker' runs 'conveyor-worker:",
    ),
    (
        "unknown-dockerfile-target",
        "target=target + '-tilt',",
        "target=target + '-dev',",
        {},
        "dockerfile: docker_build('conveyor-api') target "
        "'api-dev' is not a stage of the Dockerfile",
    ),
    (
        "dockerfile-contents-not-the-repo-dockerfile",
        "dockerfile_contents=DOCKERFILE + dev_stage(target),",
        "dockerfile_contents=DOCKERFILE.replace('/app/services', "
        "'/srv/services') + dev_stage(target),",
        {},
        "dockerfile: docker_build('conveyor-api') dockerfile_contents is not the repo's Dockerfile",
    ),
    (
        "dev-stage-adds-files",
        "        'USER root',\n",
        "        'USER root',\n        'COPY docs /app/docs',\n",
        {},
        "dockerfile: docker_build('conveyor-api') dev stage "
        "'api-tilt' adds files the production image does not have",
    ),
    (
        "sync-of-ignored-files",
        "syncs = [sync(p + '/src', '/app/' + p + '/src') for p in packages]",
        "syncs = [sync(p + '/src', '/app/' + p + '/src') "
        "for p in packages] + [sync('docs', '/app/docs')]",
        {},
        "sync: conveyor-api syncs 'docs', which .dockerignore keeps out of the build context",
    ),
    (
        "unknown-workload",
        "k8s_resource('conveyor-scheduler',",
        "k8s_resource('conveyor-schedule',",
        {},
        "unknown workload: k8s_resource('conveyor-schedule') "
        "names no workload in the deployed YAML",
    ),
    (
        "wrong-sync-dest",
        "sync(p + '/src', '/app/' + p + '/src')",
        "sync(p + '/src', '/srv/' + p + '/src')",
        {},
        "sync dest: conveyor-api syncs 'services/api/src' to '/srv/services/api/src', "
        "but the Dockerfile's 'api-tilt' target puts it at '/app/services/api/src'",
    ),
    (
        "sync-not-writable",
        "'RUN chown -R %d:%d /app' % (RUNTIME_UID, RUNTIME_UID),",
        "'RUN true',",
        {},
        "sync perms: '/app/services/api/src' in conveyor-api is not owned by uid 10001",
    ),
    (
        "read-only-root-fs",
        "container.setdefault('securityContext', {})['readOnlyRootFilesystem'] = False",
        "pass",
        {},
        "read-only: Deployment/conveyor-worker container 'worker' "
        "runs conveyor-worker with a read-only root file system",
    ),
    (
        "lock-not-in-fall-back-on",
        "fall_back_on(['requirements/uv.txt', lock]",
        "fall_back_on(['requirements/uv.txt']",
        {},
        "fall_back_on: conveyor-api does not fall back on 'requirements/api.txt'",
    ),
    (
        "no-watcher",
        "DEV_WATCHERS = ['api', 'worker', 'scheduler', 'flower']",
        "DEV_WATCHERS = ['api', 'worker', 'flower']",
        {},
        "reload: Deployment/conveyor-scheduler container 'scheduler' runs 'python -m "
        "conveyor.worker.scheduler' from live-updated conveyor-worker with no file watcher",
    ),
    (
        "wrong-port",
        "port_forward(API_PORT, API_PORT, name='API docs'",
        "port_forward(API_PORT, 8080, name='API docs'",
        {},
        "port-forward: conveyor-api forwards localhost:8000 to "
        "container port 8080, but Deployment/conveyor-api exposes [8000]",
    ),
    (
        "wrong-flower-port",
        "port_forward(FLOWER_PORT, FLOWER_PORT, name='Flower')",
        "port_forward(FLOWER_PORT, 5556, name='Flower')",
        {"flower": True},
        "port-forward: conveyor-flower forwards localhost:5555 to container port 5556",
    ),
    (
        "unknown-dep",
        "resource_deps=['conveyor-postgres', 'conveyor-redis', 'conveyor-config']",
        "resource_deps=['conveyor-postgresql', 'conveyor-redis', 'conveyor-config']",
        {},
        "unknown dep: 'conveyor-migrate' depends on 'conveyor-postgresql', which is not a resource",
    ),
    (
        "app-before-migration",
        "k8s_resource('conveyor-worker', objects=objects_of('conveyor-worker'),\n "
        "            resource_deps=['conveyor-migrate']",
        "k8s_resource('conveyor-worker', objects=objects_of('conveyor-worker'),\n "
        "            resource_deps=['conveyor-redis']",
        {},
        "start order: conveyor-worker does not wait for conveyor-migrate",
    ),
    (
        "secret-before-its-maker",
        "resource_deps=['loadgen-key'], labels=['demo']",
        "resource_deps=['conveyor-api'], labels=['demo']",
        {"loadgen": True},
        "start order: conveyor-loadgen reads Secret 'conveyor-loadgen-key', "
        "made by local_resource 'loadgen-key', but does not wait for it",
    ),
    (
        "no-labels",
        "name='redis')],\n             labels=['datastores'])",
        "name='redis')])",
        {},
        "no labels: resource 'conveyor-redis' has no labels",
    ),
    (
        "uncategorized-object",
        "k8s_resource(new_name='conveyor-config', objects=objects_of('conveyor-config'),",
        "k8s_resource(new_name='conveyor-config', objects=objects_of('conveyor-config')[1:],",
        {},
        "uncategorized: ServiceAccount/conveyor belongs to no resource",
    ),
    (
        "unknown-object",
        "grouped.setdefault(owner, []).append('%s:%s' % "
        "(obj['metadata']['name'], obj['kind'].lower()))",
        "grouped.setdefault(owner, []).append('%s:%ss' % "
        "(obj['metadata']['name'], obj['kind'].lower()))",
        {},
        "unknown object: k8s_resource 'conveyor-config' "
        "objects 'conveyor:secrets' matches nothing deployed",
    ),
    (
        "button-targets-unknown-deployment",
        "scale deployment/conveyor-worker --replicas=$((",
        "scale deployment/conveyor-workers --replicas=$((",
        {},
        "command: local_resource 'workers-scale-up' targets "
        "deployment/conveyor-workers, which is not deployed",
    ),
    (
        "button-runs-script-the-image-lacks",
        "python scripts/create_api_key.py --tenant %s",
        "python scripts/make_api_key.py --tenant %s",
        {},
        "command: local_resource 'api-key' runs 'scripts/make_api_key.py' "
        "in conveyor-api, which does not carry it",
    ),
    (
        "button-runs-unknown-make-target",
        "cmd='make test',",
        "cmd='make tests',",
        {},
        "command: local_resource 'tests' runs `make tests`, which the Makefile lacks",
    ),
    (
        "chart-object-changed",
        "k8s_yaml(encode_yaml_stream(objects))",
        "objects[0]['metadata']['labels'] = {}\nk8s_yaml(encode_yaml_stream(objects))",
        {},
        "chart edit: the Tiltfile changes NetworkPolicy/conveyor-api beyond the dev overrides",
    ),
]


class TestBrokenReferences:
    """Break one reference in a copy of the Tiltfile; the contract names it."""

    @pytest.mark.parametrize(
        ("old", "new", "args", "expected"),
        [pytest.param(*case[1:], id=case[0]) for case in BREAKS],
    )
    def test_the_contract_reports_it(
        self, tiltfile_text: str, old: str, new: str, args: dict, expected: str
    ) -> None:
        assert tiltfile_text.count(old) == 1, (
            f"the Tiltfile no longer contains {old!r} exactly once"
        )
        run = tilt_stubs.evaluate(tiltfile_text.replace(old, new), args=args)
        problems = contract_problems(run)
        assert any(p.startswith(expected) for p in problems), (
            f"expected a problem starting with:\n  {expected}\ngot:\n  " + "\n  ".join(problems)
        )

    def test_a_missing_dockerfile_is_reported(self, tiltfile_text: str, tmp_path: Path) -> None:
        """Without the Dockerfile the contract fails loudly (it is never skipped)."""
        for name in (
            "deploy",
            "libs",
            "services",
            "requirements",
            "scripts",
            "Makefile",
            ".dockerignore",
        ):
            (tmp_path / name).symlink_to(REPO / name)
        run = tilt_stubs.evaluate(tiltfile_text, root=tmp_path)
        problems = contract_problems(run)
        assert "missing path: read_file('Dockerfile') names nothing in the repo" in problems, (
            problems
        )

    def test_go_starlark_syntax_only(self, tiltfile_text: str) -> None:
        """Tilt runs go-starlark: an f-string (which starlark-rust could parse) is an error."""
        run = tilt_stubs.evaluate(tiltfile_text + "\nBANNER = f'{RELEASE}'\n")
        assert any(
            p.startswith("evaluation failed:") and "f-string" in p for p in contract_problems(run)
        )
