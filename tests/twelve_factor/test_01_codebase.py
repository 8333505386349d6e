"""Factor I, Codebase: one codebase in git, many deploys.

Every deployable (the api, worker and loadgen images, the Helm chart and the
Tiltfile) builds from this one repository, and a running process reports the
git revision it came from. Related: tests/container/test_images.py builds the
images for real (container tier); tests/deploy/test_tiltfile.py checks the
Tiltfile's whole contract. tilt_build and tilt_stubs live in tests/deploy.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import tilt_build
import tilt_stubs

from tests.conftest import new_stack
from tests.support.engines import ROOT, Engines

DEPLOYABLE_TARGETS = ("api", "worker", "loadgen")


def dockerfile_problems(text: str, root: Path, targets: tuple[str, ...]) -> list[str]:
    """Each target is a stage, and every file it COPYs from the context is a
    path of this repo that the .dockerignore lets into the build."""
    stages = tilt_build.parse_dockerfile(text)
    problems = []
    for target in targets:
        if target not in stages:
            problems.append(f"no Dockerfile target {target!r}")
            continue
        for copy in tilt_build.context_inputs(stages, target):
            for source in copy.sources:
                if source.startswith("/") or ".." in Path(source).parts:
                    problems.append(f"{target}: COPY {source} reaches outside the repo")
                elif not (root / source).exists():
                    problems.append(f"{target}: COPY {source} names nothing in the repo")
                elif tilt_build.dockerignore_excludes(root, source):
                    problems.append(f"{target}: COPY {source} is kept out by .dockerignore")
    return problems


def test_every_image_target_builds_from_repo_paths() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert dockerfile_problems(text, ROOT, DEPLOYABLE_TARGETS) == []
    # Each image really carries code from here (not from a registry or another repo).
    stages = tilt_build.parse_dockerfile(text)
    for target in DEPLOYABLE_TARGETS:
        assert tilt_build.context_inputs(stages, target), target


def test_the_checker_flags_a_foreign_missing_or_ignored_source() -> None:
    broken = (
        (ROOT / "Dockerfile")
        .read_text()
        .replace(
            "COPY services/api/src /app/services/api/src",
            "COPY ../other-repo/src /app/services/api/src",
        )
    )
    assert "api: COPY ../other-repo/src reaches outside the repo" in dockerfile_problems(
        broken, ROOT, DEPLOYABLE_TARGETS
    )
    missing = "FROM python:3.12-slim AS api\nCOPY vendor/blob docs /app/\n"
    assert dockerfile_problems(missing, ROOT, ("api", "worker")) == [
        "api: COPY vendor/blob names nothing in the repo",
        "api: COPY docs is kept out by .dockerignore",
        "no Dockerfile target 'worker'",
    ]


def tiltfile_problems(run: tilt_stubs.TiltRun) -> list[str]:
    """The Tiltfile loads, builds its images from this repo's root and deploys a
    chart of this repo that `helm template` renders."""
    problems = [f"the Tiltfile does not load: {run.error}"] if run.error else []
    problems += [] if run.images else ["the Tiltfile builds no image"]
    problems += [
        f"{image.ref} builds from {image.context!r}, not the repo root"
        for image in run.images
        if (run.root / image.context).resolve() != ROOT
    ]
    problems += [] if run.helm_calls else ["the Tiltfile deploys no chart"]
    for call in run.helm_calls:
        chart = (run.root / call.chart).resolve()
        if not (chart.is_relative_to(ROOT) and (chart / "Chart.yaml").is_file()):
            problems.append(f"{call.chart} is not a chart of this repo")
        if call.error or not call.objects:
            problems.append(f"{call.chart} does not render: {call.error}")
    return problems


def test_chart_and_tiltfile_live_here_and_build_from_the_repo_root() -> None:
    assert tiltfile_problems(tilt_stubs.evaluate()) == []
    tracked = subprocess.run(
        ["git", "ls-files", "Tiltfile", "Dockerfile", "deploy/helm/conveyor/Chart.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(tracked) == ["Dockerfile", "Tiltfile", "deploy/helm/conveyor/Chart.yaml"]


def test_the_checker_flags_a_chart_that_does_not_render() -> None:
    tiltfile = (ROOT / "Tiltfile").read_text()
    assert tiltfile.count("'config.logFormat=console'") == 1
    run = tilt_stubs.evaluate(
        tiltfile.replace("'config.logFormat=console'", "'config.logFormat=x'")
    )
    problems = tiltfile_problems(run)
    assert any("value must be one of" in p for p in problems), problems
    assert any(p.startswith("deploy/helm/conveyor does not render: ") for p in problems), problems


def test_version_reports_the_git_revision_it_runs(engines: Engines, tmp_path: Path) -> None:
    revision = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    stack = new_stack(engines, tmp_path)
    try:
        stack.start_api(GIT_REVISION=revision, APP_VERSION="9.9.9-factor1")
        body = httpx.get(f"{stack.api_url}/version", timeout=10).json()
    finally:
        stack.stop()
    assert body == {"version": "9.9.9-factor1", "revision": revision}
