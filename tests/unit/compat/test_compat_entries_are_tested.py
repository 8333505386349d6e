"""Every compat entry has a test module named after it (issue 16's rule): the
entry "lib.name" is tested by tests/**/test_compat_lib_name.py."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
COMPAT_MODULES = [
    *ROOT.glob("libs/*/src/conveyor/*/compat/*.py"),
    *ROOT.glob("services/*/src/conveyor/*/compat/*.py"),
]


def entries() -> list[str]:
    found = []
    for module in COMPAT_MODULES:
        found += re.findall(r'^\w*ENTRY = "([\w.]+)"$', module.read_text(), re.M)
    return found


def test_every_compat_entry_has_a_test_named_after_it() -> None:
    found = entries()
    assert len(found) >= 6, found  # the glob and the pattern still find them
    tests = {path.name for path in (ROOT / "tests").rglob("test_compat_*.py")}
    untested = [e for e in found if f"test_compat_{e.replace('.', '_')}.py" not in tests]
    assert untested == []
