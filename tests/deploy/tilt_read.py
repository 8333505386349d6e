"""Reading a recorded Tilt run (tilt_stubs.evaluate): its workloads, resources,
start order and images, as the contract checks (tilt_checks_*.py) need them."""

from __future__ import annotations

import os
import posixpath
import shlex
from pathlib import Path
from typing import Any

from tilt_build import Stage, parse_dockerfile
from tilt_stubs import ImageBuild, K8sObject, TiltRun

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
LONG_RUNNING = WORKLOAD_KINDS - {"Job", "CronJob"}
WATCHFILES_VALUE_OPTIONS = {
    "--ignore-paths", "--target-type", "--filter", "--args",
    "--verbosity", "--sigint-timeout", "--grace-period", "--sigkill-timeout",
}  # fmt: skip


def pod_spec(obj: dict) -> dict:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return spec if obj.get("kind") == "Pod" else (spec.get("template") or {}).get("spec") or {}


def containers(obj: dict, init: bool = True) -> list[dict]:
    pod = pod_spec(obj)
    return (pod.get("initContainers", []) if init else []) + pod.get("containers", [])


def image_repo(image: str) -> str:
    """'conveyor-api:0.1.0' -> 'conveyor-api' (Tilt matches images ignoring the tag)."""
    head, _, last = image.split("@")[0].rpartition("/")
    return (head + "/" if head else "") + last.split(":")[0]


def key(obj: dict) -> tuple[str, str]:
    return obj.get("kind", ""), obj.get("metadata", {}).get("name", "")


def workloads(run: TiltRun) -> dict[str, K8sObject]:
    """Objects Tilt turns into resources (they run pods), by name."""
    return {o.name: o for o in run.k8s_objects if o.kind in WORKLOAD_KINDS}


def chart_objects(run: TiltRun) -> list[dict]:
    return [obj for call in run.helm_calls for obj in call.objects]


def resource_name(run: TiltRun, workload: str) -> str:
    return next((r.name for r in run.k8s_resources if r.workload == workload), workload)


def resource_deps(run: TiltRun) -> dict[str, list[str]]:
    """Every resource Tilt would show, with its resource_deps."""
    deps: dict[str, list[str]] = {resource_name(run, w): [] for w in workloads(run)}
    for r in [*run.k8s_resources, *run.local_resources]:
        if r.name in deps or not r.workload:
            deps[r.name] = list(r.resource_deps)
    return deps


def waits_for(run: TiltRun, resource: str) -> set[str]:
    """The resources `resource` transitively waits for."""
    deps, seen = resource_deps(run), set()
    todo = list(deps.get(resource, []))
    while todo:
        if (dep := todo.pop()) not in seen:
            seen.add(dep)
            todo.extend(deps.get(dep, []))
    return seen


def stages(img: ImageBuild) -> dict[str, Stage]:
    return parse_dockerfile(img.dockerfile_text) if img.dockerfile_text is not None else {}


def cmd_text(cmd: Any) -> str:
    return cmd if isinstance(cmd, str) else shlex.join(str(c) for c in cmd)


def parse_watchfiles(argv: list[str]) -> tuple[str, list[str]] | None:
    """(target command, watched paths) of a `watchfiles ... 'cmd' path...` argv."""
    if not argv or posixpath.basename(argv[0]) != "watchfiles":
        return None
    positional, words = [], iter(argv[1:])
    for word in words:
        if word in WATCHFILES_VALUE_OPTIONS:
            next(words, None)
        elif not word.startswith("--"):
            positional.append(word)
    return (positional[0], positional[1:]) if positional else None


def absolute(path: Path) -> Path:
    """Absolute and normalized, without following symlinks."""
    return Path(os.path.normpath(os.path.abspath(path)))


def is_under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")
