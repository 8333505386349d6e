"""The Tiltfile contract, build side: the Tiltfile loads, names real paths, and
builds the repo Dockerfile's targets, whose live_update syncs land where the
image keeps the code and restart the processes that run it.

Each check returns problems, one line each naming the broken reference: the
real Tiltfile has none, and test_tiltfile_breaks.py breaks each on purpose.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from pathlib import Path

from tilt_build import (
    Stage,
    context_inputs,
    dockerignore_excludes,
    image_placements,
    stage_chain,
)
from tilt_read import (
    LONG_RUNNING,
    absolute,
    chart_objects,
    containers,
    image_repo,
    is_under,
    key,
    parse_watchfiles,
    pod_spec,
    stages,
)
from tilt_stubs import FallBackOn, ImageBuild, K8sObject, Sync, TiltRun


def check_evaluation(run: TiltRun) -> list[str]:
    """The Tiltfile loads (Tilt would stop at a missing file or a chart helm cannot render)."""
    return [f"evaluation failed: {run.error.strip()}"] if run.error else []


def check_paths(run: TiltRun) -> list[str]:
    """Every path the Tiltfile names exists (relative to the Tiltfile)."""
    return [
        f"missing path: {builtin}({path!r}) names nothing in the repo"
        for builtin, path in run.paths
        if not (run.root / path).exists()
    ]


def check_images(run: TiltRun) -> list[str]:
    """Every image built is run, every chart image is built, and each build is
    the repo Dockerfile's production target for it (conveyor-api -> api), plus
    dev stages that add no files."""
    problems = []
    used = {image_repo(c["image"]) for o in run.k8s_objects for c in containers(o.obj)}
    built = {img.ref for img in run.images}
    problems += [
        f"image not used: docker_build({ref!r}) builds an image no deployed container runs"
        for ref in sorted(built - used)
    ]
    problems += [
        f"image not built: {obj['kind']}/{obj['metadata']['name']} container {c['name']!r} "
        f"runs {c['image']!r}, which no docker_build builds (Tilt would try to pull it)"
        for obj in chart_objects(run)
        for c in containers(obj)
        if image_repo(c["image"]) not in built
    ]
    repo = run.root / "Dockerfile"
    repo_dockerfile = repo.read_text() if repo.is_file() else None
    for img in run.images:
        found, where = stages(img), f"dockerfile: docker_build({img.ref!r})"
        if img.dockerfile_text is None:
            problems.append(f"{where} has no Dockerfile at {img.dockerfile!r}")
        elif repo_dockerfile is None or not img.dockerfile_text.startswith(repo_dockerfile):
            problems.append(f"{where} builds from something other than the repo's Dockerfile")
        elif img.target not in found:
            problems.append(f"{where} target {img.target!r} is not a stage of the Dockerfile")
        elif (production := img.ref.removeprefix("conveyor-")) not in (
            chain := [s.name for s in stage_chain(found, img.target)]
        ):
            problems.append(f"{where} target {img.target!r} is not built on {production!r}")
        else:
            problems += [
                f"{where} dev stage {s.name!r} adds files the production image does not have"
                for s in stage_chain(found, img.target)[chain.index(production) + 1 :]
                if s.copies
            ]
    return problems


def _chowned(chain: list[Stage]) -> list[tuple[str, str]]:
    """(owner uid, path) for each `chown -R owner path...` RUN in the stages."""
    found = []
    for command in (run for stage in chain for run in stage.runs):
        for part in re.split(r"&&|;|\|\|", command):
            words = shlex.split(part)
            if words[:1] == ["chown"] and "-R" in words:
                args = [w for w in words[1:] if not w.startswith("-")]
                found += [(args[0].split(":")[0], posixpath.normpath(p)) for p in args[1:]]
    return found


def _runtime(run: TiltRun, ref: str) -> list[tuple[K8sObject, dict]]:
    """(object, container) for each long-running container of an image."""
    return [
        (o, c)
        for o in run.k8s_objects
        if o.kind in LONG_RUNNING
        for c in containers(o.obj, init=False)
        if image_repo(c["image"]) == ref
    ]


def check_live_update(run: TiltRun) -> list[str]:
    """Steps in Tilt's order, every running container of the image writable, each
    sync sound (_sync_problems), and the inputs a sync cannot deliver (the locks
    the image installs, synced packages' pyproject.toml) fall back to a full build."""
    problems = []
    for img in [i for i in run.images if i.live_update]:
        ranks = [
            0 if isinstance(s, FallBackOn) else 1 if isinstance(s, Sync) else 2
            for s in img.live_update
        ]
        if ranks != sorted(ranks):
            problems.append(f"live_update order: {img.ref} must list fall_back_on, sync, then run")
        found = stages(img)
        if img.target not in found:
            continue  # reported by check_images
        uids = set()
        for o, c in _runtime(run, img.ref):
            uid = (c.get("securityContext") or {}).get("runAsUser") or (
                pod_spec(o.obj).get("securityContext") or {}
            ).get("runAsUser")
            uids |= {str(uid)} if uid is not None else set()
            if (c.get("securityContext") or {}).get("readOnlyRootFilesystem"):
                problems.append(
                    f"read-only: {o} container {c['name']!r} runs {img.ref} with a read-only "
                    "root file system: live_update cannot write there"
                )
        context = absolute(run.root / img.context)
        for s in img.syncs:
            problems += _sync_problems(run, img, s, context, uids)
        needed = {
            posixpath.normpath(src)
            for copy in context_inputs(found, img.target)
            for src in copy.sources
            if src.startswith("requirements/")
        }
        for s in img.syncs:  # a package's code sits in <package>/src, beside its pyproject.toml
            package, src = posixpath.split(posixpath.normpath(s.local_path))
            if src == "src" and (run.root / package / "pyproject.toml").is_file():
                needed.add(posixpath.join(package, "pyproject.toml"))
        fall_back = {posixpath.normpath(p) for p in img.fall_back_on}
        problems += [
            f"fall_back_on: {img.ref} does not fall back on {p!r}: a change there needs a new image"
            for p in sorted(needed - fall_back)
        ]
        problems += [
            f"fall_back_on: {img.ref} falls back on {p!r}, outside its build context"
            for p in img.fall_back_on
            if not absolute(run.root / p).is_relative_to(context)
        ]
    return problems


def _sync_problems(
    run: TiltRun, img: ImageBuild, s: Sync, context: Path, uids: set[str]
) -> list[str]:
    """A sync reads a directory the build context lets in, and writes it where the
    target puts that code, owned by every uid the image's containers run as."""
    local, where = absolute(run.root / s.local_path), f"{img.ref} syncs {s.local_path!r}"
    if not local.exists():
        return []  # reported by check_paths
    if not local.is_relative_to(context):
        return [f"sync: {where}, outside its build context"]
    rel = local.relative_to(context).as_posix()
    problems = []
    if dockerignore_excludes(context, rel):
        problems.append(
            f"sync: {where}, which .dockerignore keeps out of the build context "
            "(Tilt never syncs it)"
        )
    chain = stage_chain(stages(img), img.target)
    placements = image_placements(stages(img), img.target)
    # The longest COPY source that holds the synced directory says where it lands.
    landed = sorted(
        (len(src), dest + rel[len(src) :]) for src, dest, _ in placements if is_under(rel, src)
    )
    remote = posixpath.normpath(s.remote_path)
    if not landed or landed[-1][1] != remote:
        put = f"puts it at {landed[-1][1]!r}" if landed else f"does not copy {rel!r}"
        return [*problems, f"sync dest: {where} to {s.remote_path!r}, but {img.target!r} {put}"]
    owners = {
        c.chown.split(":")[0] for _, dest, c in placements if c.chown and is_under(remote, dest)
    }
    owners |= {uid for uid, path in _chowned(chain) if is_under(remote, path)}
    return problems + [
        f"sync perms: {remote!r} in {img.ref} is not owned by uid {uid}, which its "
        "containers run as: live_update's tar cannot replace the files"
        for uid in sorted(uids - owners)
    ]


def check_reload(run: TiltRun) -> list[str]:
    """Every chart process that imports our code from a live-updated image runs
    the chart's own command under watchfiles, watching exactly the synced
    directories, with watchfiles installed by the image's lock."""
    problems = []
    synced = {img.ref: img for img in run.images if img.syncs}
    final = {key(o.obj): o.obj for o in run.k8s_objects}
    for obj in chart_objects(run):
        if obj["kind"] not in LONG_RUNNING or key(obj) not in final:
            continue
        for c in containers(obj, init=False):
            img, command = (
                synced.get(image_repo(c["image"])),
                c.get("command", []) + c.get("args", []),
            )
            if (
                img is None
                or command[:2] != ["python", "-m"]
                or not command[2].startswith("conveyor.")
            ):
                continue
            where = f"reload: {obj['kind']}/{obj['metadata']['name']} container {c['name']!r}"
            dev = next(d for d in containers(final[key(obj)], init=False) if d["name"] == c["name"])
            watch = parse_watchfiles(dev.get("command", []) + dev.get("args", []))
            dests = sorted(posixpath.normpath(s.remote_path) for s in img.syncs)
            locks = [
                run.root / src
                for copy in context_inputs(stages(img), img.target)
                for src in copy.sources
                if src.startswith("requirements/") and (run.root / src).is_file()
            ]
            if watch is None:
                problems.append(
                    f"{where} runs {shlex.join(command)!r} from live-updated {img.ref} with no "
                    "file watcher: synced code would never run"
                )
            elif shlex.split(watch[0]) != command:
                problems.append(
                    f"{where}: watchfiles runs {watch[0]!r}, not {shlex.join(command)!r}"
                )
            elif sorted(posixpath.normpath(p) for p in watch[1]) != dests:
                problems.append(
                    f"{where}: watchfiles watches {watch[1]}, but live_update syncs {dests}"
                )
            elif not any(re.search(r"^watchfiles==", p.read_text(), re.M) for p in locks):
                problems.append(f"{where} runs watchfiles, which {img.ref}'s locks do not install")
    return problems
