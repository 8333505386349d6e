"""Every use of a third-party library's internals, one module per library.

Each entry says which upstream behaviour it works around, the upstream issue
where there is one, and the versions it was verified against. `supported`
checks the installed version at start-up: outside the range the entry is not
applied, and one warning names the library and the version found. Stock
upstream behaviour then applies, which each module's docstring describes.

Logging here goes through the standard library (not structlog), so that
conveyor.common.logging can use an entry without an import cycle.
"""

from __future__ import annotations

import logging
import platform
import re
from importlib.metadata import PackageNotFoundError, version

log = logging.getLogger("conveyor.compat")
_warned: set[str] = set()


def version_tuple(text: str) -> tuple[int, ...]:
    """The release numbers at the start of a version: "0.66b2" -> (0, 66)."""
    found = re.match(r"\d+(?:\.\d+)*", text.strip())
    return tuple(int(part) for part in found.group(0).split(".")) if found else ()


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution ("python" means the interpreter)."""
    if distribution == "python":
        return platform.python_version()
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def in_range(found: str, minimum: str, below: str) -> bool:
    """minimum <= found < below, on release numbers only (pre-releases count as their release)."""
    release = version_tuple(found)
    return version_tuple(minimum) <= release < version_tuple(below)


def supported(entry: str, distribution: str, minimum: str, below: str) -> bool:
    """True when `distribution` is installed at a version in [minimum, below).

    Otherwise one warning per entry and process, naming the library and its
    version, and False: the caller leaves upstream's behaviour alone.
    """
    found = installed_version(distribution)
    if found is not None and in_range(found, minimum, below):
        return True
    if entry not in _warned:
        _warned.add(entry)
        log.warning(
            "compat entry %s not applied: %s %s is outside the verified range >=%s,<%s",
            entry,
            distribution,
            found or "(not installed)",
            minimum,
            below,
        )
    return False
