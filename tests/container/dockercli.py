"""A thin wrapper over the docker CLI for the container tier.

The CLI (not the Python SDK) is used on purpose: the tests then run exactly the
commands docs/deploy/containers.md gives users. Debian's client (/usr/bin/docker) is preferred
when present: it builds with BuildKit through DOCKER_BUILDKIT=1 without buildx,
which the newer client first on PATH here would need. $DOCKER_CLI overrides.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def docker_cli() -> str:
    if os.environ.get("DOCKER_CLI"):
        return os.environ["DOCKER_CLI"]
    if Path("/usr/bin/docker").exists():
        return "/usr/bin/docker"
    return shutil.which("docker") or "docker"


DOCKER = docker_cli()


class DockerError(AssertionError):
    pass


def docker(
    *args: str, check: bool = True, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            [DOCKER, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
        )
    except subprocess.TimeoutExpired as exc:
        raise DockerError(f"`docker {' '.join(args)}` timed out after {timeout}s") from exc
    if check and done.returncode != 0:
        raise DockerError(
            f"`docker {' '.join(args)}` exited {done.returncode}\n"
            f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
        )
    return done


def engine_problem() -> str | None:
    """None when a Docker engine answers; otherwise why not, for a loud failure."""
    try:
        done = subprocess.run(
            [DOCKER, "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except FileNotFoundError:
        return f"no docker CLI at {DOCKER!r}"
    except subprocess.TimeoutExpired:
        return "`docker version` timed out"
    if done.returncode != 0 or not done.stdout.strip():
        return (done.stderr or done.stdout).strip() or f"`docker version` exited {done.returncode}"
    return None


def inspect(obj: str) -> dict[str, Any]:
    return json.loads(docker("inspect", obj).stdout)[0]  # type: ignore[no-any-return]


def image_size_mb(image: str) -> float:
    return int(docker("image", "inspect", "--format", "{{.Size}}", image).stdout) / 1e6


def build(target: str, tag: str, build_args: dict[str, str], timeout: float = 1200) -> float:
    """`docker build --target TARGET` from the repo root; returns seconds taken."""
    args = ["build", "--target", target, "-t", tag]
    for key, value in build_args.items():
        args += ["--build-arg", f"{key}={value}"]
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    started = time.monotonic()
    docker(*args, ".", timeout=timeout, env=env)
    return time.monotonic() - started


@dataclass
class Session:
    """Every container and network a test session makes, so all of them go at the end."""

    prefix: str = field(default_factory=lambda: f"cvtest-{uuid.uuid4().hex[:8]}")
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"org.conveyor.test-session={self.prefix}"

    def name(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    def network(self, role: str = "net") -> str:
        name = self.name(role)
        docker("network", "create", "--label", self.label, name)
        self.networks.append(name)
        return name

    def run_detached(self, role: str, *args: str) -> str:
        name = self.name(role)
        self.containers.append(name)
        docker("run", "-d", "--name", name, "--label", self.label, *args)
        return name

    def run_once(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """A one-off container (removed after); its stdout and stderr stay separate."""
        return docker("run", "--rm", "--label", self.label, *args, check=False, timeout=timeout)

    def cleanup(self) -> None:
        found = docker("ps", "-aq", "--filter", f"label={self.label}", check=False).stdout.split()
        if found:
            docker("rm", "-f", "-v", *found, check=False, timeout=60)
        for net in self.networks:
            docker("network", "rm", net, check=False)


def logs(container: str) -> tuple[str, str]:
    """(stdout, stderr) the container wrote, kept apart as docker stored them."""
    done = docker("logs", container)
    return done.stdout, done.stderr


def published(container: str, port: int) -> str:
    """host:port the engine published for the container's PORT/tcp."""
    out = docker("port", container, f"{port}/tcp").stdout.split()
    for line in out:  # prefer IPv4
        if line.count(":") == 1:
            return line
    return out[0]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.25):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def state(container: str) -> dict[str, Any]:
    return inspect(container)["State"]  # type: ignore[no-any-return]


def non_json_lines(text: str) -> list[str]:
    """The lines of a log stream that are not one JSON object each."""
    bad = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            parsed = json.loads(line)
        except ValueError:
            bad.append(line)
            continue
        if not isinstance(parsed, dict):
            bad.append(line)
    return bad
