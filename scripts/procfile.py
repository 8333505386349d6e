"""Read the Procfile: the one list of process types every runner shares."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


def read_procfile(path: Path = ROOT / "Procfile") -> dict[str, str]:
    processes: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = _LINE.match(line.strip())
        if match:
            processes[match.group(1)] = match.group(2).strip()
    return processes
