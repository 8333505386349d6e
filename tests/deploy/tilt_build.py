"""What an image build carries: the Dockerfile's stages, read with
dockerfile-parse, and the build context's .dockerignore, matched with pathspec.

Used by the Tiltfile contract (test_tiltfile*.py) to follow a live_update sync
to where the image keeps the code, and by tests/twelve_factor (Factor I).
"""

from __future__ import annotations

import io
import json
import posixpath
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pathspec
from dockerfile_parse import DockerfileParser


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()), env_replace=False)
    return [
        (i["instruction"], i["value"]) for i in parser.structure if i["instruction"] != "COMMENT"
    ]


@dataclass
class Copy:
    sources: list[str]
    dest: str
    from_stage: str | None  # --from=<stage or image>
    chown: str | None

    def placements(self, workdir: str) -> list[tuple[str, str]]:
        """(context path, image path) per source, by Docker's rules: several sources
        (or a dest ending in /) go into the dest directory; one source becomes the dest."""
        dest = posixpath.join(workdir, self.dest)
        into_dir = len(self.sources) > 1 or self.dest.endswith("/")
        return [
            (src, posixpath.join(dest, posixpath.basename(src)) if into_dir else dest.rstrip("/"))
            for src in (s.rstrip("/") for s in self.sources)
        ]


@dataclass
class Stage:
    name: str
    base: str
    workdir: str = "/"
    copies: list[Copy] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)


def _copy(value: str) -> Copy:
    words = shlex.split(value)
    flags = dict(w[2:].partition("=")[::2] for w in words if w.startswith("--"))
    paths = [w for w in words if not w.startswith("--")]
    if paths and paths[0].startswith("["):  # exec form: COPY ["src", "dest"]
        paths = json.loads(" ".join(paths))
    return Copy(paths[:-1], paths[-1], flags.get("from"), flags.get("chown"))


def parse_dockerfile(text: str) -> dict[str, Stage]:
    """Stages by name (unnamed ones by index), in order; a stage built FROM
    another starts in its WORKDIR."""
    stages: dict[str, Stage] = {}
    stage: Stage | None = None
    for keyword, value in instructions(text):
        if keyword == "FROM":
            words = [w for w in value.split() if not w.startswith("--")]
            named = len(words) >= 3 and words[1].lower() == "as"
            parent = stages.get(words[0])
            stage = Stage(words[2] if named else str(len(stages)), words[0])
            stage.workdir = parent.workdir if parent else "/"
            stages[stage.name] = stage
        elif stage is None:
            continue  # an ARG before the first FROM
        elif keyword in ("COPY", "ADD"):
            stage.copies.append(_copy(value))
        elif keyword == "RUN":
            stage.runs.append(value)
        elif keyword == "WORKDIR":
            stage.workdir = posixpath.join(stage.workdir, value)
    return stages


def stage_chain(stages: dict[str, Stage], target: str) -> list[Stage]:
    """The target and the stages it is built FROM, base first."""
    chain: list[Stage] = []
    name = target
    while name in stages and name not in [s.name for s in chain]:
        chain.insert(0, stages[name])
        name = stages[name].base
    return chain


def context_inputs(stages: dict[str, Stage], target: str) -> list[Copy]:
    """Every COPY from the build context that the target needs: through its FROM
    chain and through the stages it copies --from."""
    seen: set[str] = set()
    copies: list[Copy] = []

    def visit(name: str) -> None:
        for stage in stage_chain(stages, name):
            if stage.name not in seen:
                seen.add(stage.name)
                for copy in stage.copies:
                    if copy.from_stage is None:
                        copies.append(copy)
                    elif copy.from_stage in stages:
                        visit(copy.from_stage)

    visit(target)
    return copies


def image_placements(stages: dict[str, Stage], target: str) -> list[tuple[str, str, Copy]]:
    """(context path, image path, COPY) for the files the target itself carries:
    the context COPYs of its FROM chain (not of build-only --from stages)."""
    return [
        (src, dest, copy)
        for stage in stage_chain(stages, target)
        for copy in stage.copies
        if copy.from_stage is None
        for src, dest in copy.placements(stage.workdir)
    ]


def dockerignore_excludes(context: Path, path: str) -> bool:
    """Whether the context's .dockerignore keeps `path` (relative to the context)
    out of the build, and so out of Tilt's live_update syncs."""
    ignore = context / ".dockerignore"
    if not ignore.is_file():
        return False
    # Docker's rules, not git's: each pattern is anchored at the context root ('*' is
    # one path segment, '**' any), the last pattern matching the path or one of its
    # parents wins, '!' re-includes. Anchored gitignore globs match the same strings
    # for every pattern form this repo's allowlist uses (no escapes or char ranges).
    lines = [line.strip() for line in ignore.read_text().splitlines()]
    patterns = [
        ("!" if line.startswith("!") else "") + "/" + line.lstrip("!").strip("/")
        for line in lines
        if line and not line.startswith("#")
    ]
    spec = pathspec.PathSpec.from_lines("gitignore", patterns)
    parts = posixpath.normpath(path).split("/")
    results = [spec.check_file("/".join(parts[: i + 1])) for i in range(len(parts))]
    decided = [r for r in results if r.index is not None]
    return bool(decided) and bool(max(decided, key=lambda r: r.index or 0).include)
