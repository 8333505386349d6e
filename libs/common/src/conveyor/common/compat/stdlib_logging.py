"""The standard library's `logging`: no caller lookup per record.

Upstream behaviour: every record walks the stack to find its caller (file,
line, function) while the module global `logging._srcfile` is set. Our
renderers never show those fields, and the walk is a measurable share of a
log call. The Logging HOWTO ("Optimization") documents setting it to None; it
is still a private name, so it sits here. No upstream issue: it is the
documented recipe.

Range: CPython 3.11 to 3.14, the versions the HOWTO documents the recipe for;
the tests exercise it on 3.11 (this project's CI). Outside that range the
lookup stays on (warning logged): records cost a little more, nothing else changes.
"""

from __future__ import annotations

import logging

from conveyor.common.compat import supported

ENTRY = "stdlib_logging.no_caller_lookup"
PYTHON_RANGE = ("3.11", "3.15")


def skip_caller_lookup() -> bool:
    """Stop records from looking up their caller. True when applied."""
    if not supported(ENTRY, "python", *PYTHON_RANGE):
        return False
    logging._srcfile = None
    return True
