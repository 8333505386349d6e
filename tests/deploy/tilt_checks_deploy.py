"""The Tiltfile contract, deploy side: the chart deployed as rendered (but for
the dev overrides), every object in a labelled resource, start order, port
forwards, and buttons that name what exists. Also `contract_problems()`, every
check of both sides.
"""

from __future__ import annotations

import posixpath
import re
from copy import deepcopy
from pathlib import Path

from tilt_build import image_placements, stage_chain
from tilt_checks_build import (
    check_evaluation,
    check_images,
    check_live_update,
    check_paths,
    check_reload,
)
from tilt_checks_observability import check_observability
from tilt_read import (
    LONG_RUNNING,
    WORKLOAD_KINDS,
    chart_objects,
    cmd_text,
    containers,
    image_repo,
    key,
    parse_watchfiles,
    resource_deps,
    resource_name,
    stages,
    waits_for,
    workloads,
)
from tilt_stubs import K8sObject, TiltRun

COMPONENT = "app.kubernetes.io/component"
LABEL_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")  # Tilt's rule
SCHEMA_USERS = {"api", "worker", "scheduler"}  # chart components that need the migrated schema
REF_KINDS = [("secretRef", "Secret"), ("configMapRef", "ConfigMap"),
             ("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")]  # fmt: skip


def check_chart_edits(run: TiltRun) -> list[str]:
    """Every chart object is deployed, changed only by the dev overrides (the
    watchfiles command, a writable root FS for live_update)."""
    problems = []
    synced = {img.ref for img in run.images if img.syncs}
    final = {key(o.obj): o for o in run.k8s_objects}
    for obj in chart_objects(run):
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if key(obj) not in final:
            problems.append(f"chart edit: {name} is rendered but never deployed")
            continue
        dev = deepcopy(final[key(obj)].obj)
        for c, d in zip(containers(obj), containers(dev), strict=False):
            if image_repo(c["image"]) in synced and obj["kind"] in LONG_RUNNING:
                if parse_watchfiles(d.get("command", [])):
                    d["command"] = c.get("command")
                if (d.get("securityContext") or {}).get("readOnlyRootFilesystem") is False:
                    d["securityContext"]["readOnlyRootFilesystem"] = (
                        c.get("securityContext") or {}
                    ).get("readOnlyRootFilesystem")
        if dev != obj:
            problems.append(f"chart edit: the Tiltfile changes {name} beyond the dev overrides")
    chart_keys = {key(obj) for obj in chart_objects(run)}
    problems += [
        f"chart edit: {o} is deployed but comes from neither the chart nor a YAML file"
        for o in run.k8s_objects
        if not (run.root / o.source).is_file() and key(o.obj) not in chart_keys
    ]
    return problems


def _object_matches(run: TiltRun, selector: str) -> list[K8sObject]:
    """Tilt's objects= selector: name[:kind[:namespace]], case-insensitive."""
    parts = selector.lower().split(":")
    return [
        o
        for o in run.k8s_objects
        if o.name.lower() == parts[0]
        and (len(parts) < 2 or o.kind.lower() == parts[1])
        and (len(parts) < 3 or (o.obj["metadata"].get("namespace") or "default") == parts[2])
    ]


def _duplicates(names: list[str]) -> list[str]:
    return sorted({n for n in names if names.count(n) > 1})


def check_resources(run: TiltRun) -> list[str]:
    """Resources name real workloads and objects, every object lands in one
    resource, resources carry valid labels and depend on resources."""
    wl = workloads(run)
    names = [o.name for o in run.k8s_objects if o.kind in WORKLOAD_KINDS]
    problems = [
        f"duplicate workload: several workloads are named {n!r}" for n in _duplicates(names)
    ]
    for r in run.k8s_resources:
        if r.workload and r.workload not in wl:
            problems.append(
                f"unknown workload: k8s_resource({r.workload!r}) names no deployed workload"
            )
        elif not r.workload and not r.objects and not r.chart:  # chart: a helm_resource
            problems.append(f"k8s_resource {r.name!r}: without a workload it needs objects")
    configured = {r.workload for r in run.k8s_resources}
    problems += [
        f"unconfigured workload: {o} has no k8s_resource()"
        for n, o in sorted(wl.items())
        if n not in configured
    ]
    # Tilt groups a Service with the workload whose pods it selects; any other
    # object needs an objects= entry or lands in "uncategorized".
    pod_labels = [
        ((o.obj["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
        for o in wl.values()
    ]
    grouped = {
        key(o.obj)
        for o in run.k8s_objects
        if o.kind in WORKLOAD_KINDS
        or (
            o.kind == "Service"
            and (sel := o.obj["spec"].get("selector"))
            and any(sel.items() <= p.items() for p in pod_labels)
        )
    }
    claimed: dict[tuple[str, str], str] = {}
    for r in run.k8s_resources:
        for selector in r.objects:
            matches, where = (
                _object_matches(run, selector),
                f"k8s_resource {r.name!r} objects {selector!r}",
            )
            if len(matches) != 1:
                problems.append(
                    f"{'ambiguous' if matches else 'unknown'} object: {where} "
                    f"matches {len(matches)} deployed objects"
                )
            elif key(matches[0].obj) in grouped or key(matches[0].obj) in claimed:
                problems.append(f"object taken: {where} is already in a resource")
            else:
                claimed[key(matches[0].obj)] = r.name
    problems += [
        f"uncategorized: {o} belongs to no resource"
        for o in run.k8s_objects
        if key(o.obj) not in grouped | set(claimed)
    ]
    for r in [*run.k8s_resources, *run.local_resources]:
        problems += [f"no labels: resource {r.name!r} has no labels"] if not r.labels else []
        problems += [
            f"bad label: resource {r.name!r} label {x!r}" for x in r.labels if not LABEL_RE.match(x)
        ]
    names = [r.name for r in run.local_resources] + [
        r.name for r in run.k8s_resources if not r.workload
    ]
    problems += [f"duplicate resource: {n!r} is defined twice" for n in _duplicates(names)]
    deps = resource_deps(run)
    for name, names in deps.items():
        problems += [
            f"unknown dep: {name!r} depends on {d!r}, which is not a resource"
            for d in names
            if d not in deps
        ]
        problems += (
            [f"dependency cycle: {name!r} waits for itself"] if name in waits_for(run, name) else []
        )
    return problems


def check_port_forwards(run: TiltRun) -> list[str]:
    """Port-forwards reach ports the workload's containers expose; no local port twice."""
    problems, wl, taken = [], workloads(run), {}
    for r in run.k8s_resources:
        for pf in r.port_forwards:
            if pf.local_port in taken:
                problems.append(
                    f"port clash: localhost:{pf.local_port} is forwarded "
                    f"by {taken[pf.local_port]!r} and {r.name!r}"
                )
            taken[pf.local_port] = r.name
            if r.workload in wl:
                exposed = sorted(
                    p["containerPort"]
                    for c in containers(wl[r.workload].obj, init=False)
                    for p in c.get("ports", [])
                )
                if (port := pf.container_port or pf.local_port) not in exposed:
                    problems.append(
                        f"port-forward: {r.name} forwards localhost:{pf.local_port} to "
                        f"container port {port}, but {wl[r.workload]} exposes {exposed}"
                    )
    return problems


def _config_refs(obj: dict) -> list[tuple[str, str]]:
    """(kind, name) of the non-optional Secrets and ConfigMaps a pod reads."""
    refs = []
    for c in containers(obj):
        sources = [*c.get("envFrom", []), *(v.get("valueFrom", {}) for v in c.get("env", []))]
        for source in sources:
            for field, kind in REF_KINDS:
                if field in source and not source[field].get("optional"):
                    refs.append((kind, source[field]["name"]))
    return refs


def check_start_order(run: TiltRun) -> list[str]:
    """Data stores, then the chart's migration Job, then the processes that need
    the schema; a pod reading a Secret that a local_resource makes waits for it."""
    problems, wl = [], workloads(run)
    chart = {key(obj) for obj in chart_objects(run)}
    datastores = {resource_name(run, n) for n, o in wl.items() if (run.root / o.source).is_file()}
    migrations = [
        resource_name(run, n) for n, o in wl.items() if o.kind == "Job" and key(o.obj) in chart
    ]
    if run.helm_calls and not migrations:
        problems.append("start order: the chart renders no migration Job to wait for")
    for migration in migrations:
        if missing := sorted(datastores - waits_for(run, migration)):
            problems.append(f"start order: {migration} does not wait for the data stores {missing}")
        for name, o in sorted(wl.items()):
            component = (o.obj["metadata"].get("labels") or {}).get(COMPONENT)
            if (
                key(o.obj) in chart
                and component in SCHEMA_USERS
                and migration not in waits_for(run, resource_name(run, name))
            ):
                problems.append(
                    f"start order: {resource_name(run, name)} does not wait for {migration}"
                )
    made_by = {
        secret: lr.name
        for lr in run.local_resources
        for secret in re.findall(r"create secret generic ([a-z0-9.-]+)", cmd_text(lr.cmd))
    }
    deployed = {key(o.obj) for o in run.k8s_objects}
    for name, o in sorted(wl.items()):
        for kind, ref in _config_refs(o.obj):
            resource = resource_name(run, name)
            if (kind, ref) in deployed:
                continue
            if kind != "Secret" or ref not in made_by:
                problems.append(
                    f"missing {kind}: {o} reads {kind} {ref!r}, which nothing deploys or creates"
                )
            elif made_by[ref] not in waits_for(run, resource):
                problems.append(
                    f"start order: {resource} reads Secret {ref!r}, made by "
                    f"local_resource {made_by[ref]!r}, but does not wait for it"
                )
    return problems


def makefile_targets(root: Path) -> set[str]:
    return set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", (root / "Makefile").read_text(), re.M))


EXEC_RE = re.compile(
    r"exec (?:deployment|deploy)/([a-z0-9.-]+) -c ([a-z0-9-]+)(?: -- python ([\w./-]+\.py))?"
)


def check_commands(run: TiltRun) -> list[str]:
    """Buttons name deployed Deployments and their containers, scripts the
    image carries, and Makefile targets (every one: none is waived)."""
    problems = []
    deployments = {o.name: o.obj for o in run.k8s_objects if o.kind == "Deployment"}
    builds = {img.ref: img for img in run.images}
    targets = makefile_targets(run.root)
    for lr in run.local_resources:
        text, where = cmd_text(lr.cmd), f"command: local_resource {lr.name!r}"
        for name in sorted(
            set(re.findall(r"\b(?:deployment|deploy)/([a-z0-9.-]+)", text)) - set(deployments)
        ):
            problems.append(f"{where} targets deployment/{name}, which is not deployed")
        for name, container, script in sorted(set(EXEC_RE.findall(text))):
            found = [
                c
                for c in containers(deployments.get(name, {}), init=False)
                if c["name"] == container
            ]
            if name in deployments and not found:
                problems.append(
                    f"{where} execs into container {container!r}, not in deployment/{name}"
                )
            img = builds.get(image_repo(found[0]["image"])) if found and script else None
            if img and img.target in (found_stages := stages(img)):
                at = posixpath.join(stage_chain(found_stages, img.target)[-1].workdir, script)
                if at not in {dest for _, dest, _ in image_placements(found_stages, img.target)}:
                    problems.append(
                        f"{where} runs {script!r} in {img.ref}, which does not carry it at {at!r}"
                    )
        problems += [
            f"{where} runs `make {t}`, which the Makefile lacks"
            for t in re.findall(r"\bmake ([A-Za-z0-9_.-]+)", text)
            if t not in targets
        ]
    return problems


CHECKS = [
    check_evaluation, check_paths, check_images, check_live_update, check_reload,
    check_chart_edits, check_resources, check_port_forwards, check_start_order, check_commands,
    check_observability,
]  # fmt: skip


def contract_problems(run: TiltRun) -> list[str]:
    return [problem for check in CHECKS for problem in check(run)]
