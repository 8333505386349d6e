"""Factor II, Dependencies: explicitly declare and isolate dependencies.

- every import in each package's src is declared in that package's own
  pyproject.toml, and conveyor.* imports follow the dependency rule
  (common imports neither api nor worker; api and worker never import each other);
- the locks are hash-pinned, and they pin every declared dependency at a
  version its pyproject allows (`make lock-check` re-resolves them in full);
- `pip check` passes in the venv the tests run in;
- nothing comes from a system package: every import resolves to the stdlib,
  the venv's site-packages or the repo, and the venv excludes system site-packages.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import sysconfig
import tomllib
from collections import defaultdict
from pathlib import Path, PurePosixPath

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.engines import ROOT
from tests.twelve_factor.conftest import SRC_ROOTS

# What each package may import of the others (docs/design.md, "Dependency rule").
ALLOWED_CONVEYOR = {
    "conveyor-common": {"common"},
    "conveyor-api": {"common", "api"},
    "conveyor-worker": {"common", "worker"},
}
LOCKS = ("api", "worker", "dev", "uv", "loadgen")
# The lock each deployable's image installs.
SERVICE_LOCKS = {
    "api": ["conveyor-common", "conveyor-api"],
    "worker": ["conveyor-common", "conveyor-worker"],
}


def imports_of(path: Path) -> list[tuple[str, int]]:
    """Absolute imported module names in a file, with line numbers."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno))
    return found


def declared(package_dir: Path) -> set[str]:
    """The distributions a package declares: its own dependencies, and those of
    the monorepo packages it declares (conveyor-common is the shared stack)."""
    project = tomllib.loads((package_dir / "pyproject.toml").read_text())["project"]
    names = {canonicalize_name(Requirement(r).name) for r in project.get("dependencies", [])}
    for name in sorted(names):
        if name in SRC_ROOTS and SRC_ROOTS[name] != package_dir:
            names |= declared(SRC_ROOTS[name])
    return names


# Imports of a distribution that arrives only as a dependency of a declared one.
# Each needs a line in that pyproject.toml (an app change, reported in issue 9's
# note); the test fails once a line is added, so that this list only shrinks.
PENDING: dict[tuple[str, str], str] = {}


@functools.cache
def module_owners() -> dict[str, frozenset[str]]:
    """Each importable package and module name (and every parent package) →
    the distributions that install files there.

    `packages_distributions()` knows top-level names only; for a namespace
    package such as `opentelemetry`, shipped by a dozen distributions, that
    would accept `opentelemetry.semconv` from any of them.
    """
    owners: defaultdict[str, set[str]] = defaultdict(set)
    for dist in importlib.metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        for file in dist.files or ():
            path = PurePosixPath(str(file))
            if path.suffix not in (".py", ".pyi", ".so") or ".." in path.parts:
                continue
            parts = [*path.parts[:-1], path.name.split(".")[0]]
            if parts[-1] == "__init__":
                parts.pop()
            for depth in range(1, len(parts) + 1):
                owners[".".join(parts[:depth])].add(name)
    return {module: frozenset(names) for module, names in owners.items()}


def owners_of(module: str) -> frozenset[str]:
    """The distributions that provide `module`, by its deepest known package."""
    known = module_owners()
    parts = module.split(".")
    for depth in range(len(parts), 0, -1):
        found = known.get(".".join(parts[:depth]))
        if found:
            return found
    return frozenset()


def import_problems(package: str, src: Path, declared_names: set[str]) -> list[str]:
    """Undeclared third-party imports and dependency-rule breaks under `src`."""
    problems = []
    for path in sorted(src.rglob("*.py")):
        where = path.relative_to(src.parent.parent) if src.parent.parent in path.parents else path
        for name, line in imports_of(path):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top == "__future__":
                continue
            if top == "conveyor":
                part = name.split(".")[1] if "." in name else ""
                if part not in ALLOWED_CONVEYOR[package]:
                    problems.append(f"{where}:{line} {package} imports {name} (dependency rule)")
                continue
            owners = owners_of(name)
            if not owners:
                problems.append(
                    f"{where}:{line} imports {name}, which no installed package provides"
                )
            elif not owners & declared_names:
                problems.append(
                    f"{where}:{line} imports {name} ({', '.join(sorted(owners))}), "
                    f"not declared in {package}'s pyproject.toml"
                )
    return problems


def test_every_import_is_declared_in_its_own_pyproject() -> None:
    problems = []
    for package, directory in SRC_ROOTS.items():
        names = declared(directory)
        for owner, distribution in PENDING:
            if owner == package:
                assert distribution not in names, f"{owner} declares {distribution}: drop PENDING"
                names.add(distribution)
        problems += import_problems(package, directory / "src", names)
    assert problems == []


def test_the_import_checker_flags_undeclared_imports_and_rule_breaks(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "conveyor" / "common").mkdir(parents=True)
    (src / "conveyor" / "common" / "bad.py").write_text(
        "import json\nimport yaml\nfrom conveyor.api import app\nimport not_installed_anywhere\n"
        # Installed (under a namespace that declared packages share), not declared.
        "from opentelemetry.util.http import ExcludeList\nfrom opentelemetry import trace\n"
    )
    problems = import_problems("conveyor-common", src, declared(SRC_ROOTS["conveyor-common"]))
    assert len(problems) == 4, problems
    assert "imports yaml (pyyaml), not declared in conveyor-common's pyproject.toml" in problems[0]
    assert "conveyor-common imports conveyor.api (dependency rule)" in problems[1]
    assert "no installed package provides" in problems[2]
    assert problems[3].endswith(
        "imports opentelemetry.util.http (opentelemetry-util-http),"
        " not declared in conveyor-common's pyproject.toml"
    )
    # api and worker never import each other.
    (src / "conveyor" / "common" / "bad.py").write_text("from conveyor.worker.app import x\n")
    assert import_problems("conveyor-api", src, set())[0].endswith(
        "conveyor-api imports conveyor.worker.app (dependency rule)"
    )


def lock_entries(text: str) -> dict[str, tuple[str, int]]:
    """{name: (version, number of hashes)} from a pip-compile style lock; raises
    on any requirement without an exact pin."""
    entries: dict[str, tuple[str, int]] = {}
    logical = re.sub(r"\\\n\s*", " ", text)
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise ValueError(f"option line in a lock: {line[:80]}")
        spec = line.split(" --hash", 1)[0].split(";", 1)[0].strip()
        match = re.fullmatch(r"([A-Za-z0-9._\-\[\],]+)==([^\s]+)", spec)
        if not match:
            raise ValueError(f"not pinned with ==: {spec}")
        hashes = line.count("--hash=sha256:")
        if hashes == 0:
            raise ValueError(f"no --hash for {spec}")
        name = canonicalize_name(match.group(1).split("[")[0])
        entries[name] = (match.group(2), hashes)
    return entries


def test_locks_are_hash_pinned() -> None:
    for lock in LOCKS:
        entries = lock_entries((ROOT / "requirements" / f"{lock}.txt").read_text())
        assert entries, lock


def test_the_lock_checker_rejects_unpinned_or_unhashed_lines() -> None:
    for bad, message in (
        ("fastapi>=0.111 \\\n    --hash=sha256:00\n", "not pinned with ==: fastapi>=0.111"),
        ("fastapi==0.111.0\n", "no --hash for fastapi==0.111.0"),
        ("-e ./libs/common\n", "option line in a lock"),
    ):
        try:
            lock_entries(bad)
        except ValueError as exc:
            assert str(exc).startswith(message), exc
        else:
            raise AssertionError(f"accepted {bad!r}")


def test_locks_pin_every_declared_dependency_at_an_allowed_version() -> None:
    for lock, packages in {**SERVICE_LOCKS, "dev": list(SRC_ROOTS)}.items():
        pinned = lock_entries((ROOT / "requirements" / f"{lock}.txt").read_text())
        for package in packages:
            project = tomllib.loads((SRC_ROOTS[package] / "pyproject.toml").read_text())
            for raw in project["project"]["dependencies"]:
                req = Requirement(raw)
                name = canonicalize_name(req.name)
                if name.startswith("conveyor-"):
                    continue  # the repo's own packages are installed from source
                assert name in pinned, f"{package} needs {raw}, missing from {lock}.txt"
                version = pinned[name][0]
                assert req.specifier.contains(version, prereleases=True), (
                    f"{lock}.txt pins {name}=={version}, outside {package}'s {raw}"
                )
    # The service images carry no dev tools.
    assert "pytest" not in lock_entries((ROOT / "requirements" / "api.txt").read_text())


def test_pip_check_passes_in_the_venv() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_nothing_comes_from_a_system_package() -> None:
    cfg = (Path(sys.prefix) / "pyvenv.cfg").read_text()
    assert sys.prefix != sys.base_prefix, "the tests must run in the project venv"
    assert re.search(r"include-system-site-packages\s*=\s*false", cfg), cfg
    site_dirs = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
    outside = []
    for directory in SRC_ROOTS.values():
        for path in (directory / "src").rglob("*.py"):
            for name, _ in imports_of(path):
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in {"__future__", "conveyor"}:
                    continue
                loaded = sys.modules.get(top)
                if loaded is not None and getattr(loaded, "__file__", None):
                    # Already imported; some packages (kombu) replace their module
                    # object and lose __spec__, so ask the module itself.
                    origin = Path(str(loaded.__file__))
                else:
                    spec = importlib.util.find_spec(top)
                    assert spec is not None, f"{path}: {name} is not importable"
                    locations = spec.submodule_search_locations or []
                    origin = Path(spec.origin or next(iter(locations)))
                if not any(origin.resolve().is_relative_to(d) for d in site_dirs):
                    outside.append(f"{top} from {origin}")
    assert outside == []
