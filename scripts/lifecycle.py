"""Stopping long-running local commands cleanly: `make up`, the bench, the demos, pytest.

Two rules keep every process from outliving the command that started it:

* SIGTERM and SIGHUP raise KeyboardInterrupt, as Ctrl-C does, so every
  `finally` and context manager that stops a child runs. Python's default for
  SIGTERM is to die on the spot, cleanup skipped.
* Children we start in their own session (so Ctrl-C reaches only us, and we
  stop them in order) get a parent-death signal through util-linux's
  `setpriv --pdeathsig`: if we are killed outright (SIGKILL), the kernel still
  tells them to stop. Where `setpriv` is missing (not Linux), the first rule
  alone applies.
"""

from __future__ import annotations

import shutil
import signal
import threading
from types import FrameType

_SETPRIV = shutil.which("setpriv")


def _interrupt(signum: int, _: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP stop this process the way Ctrl-C does (main thread only)."""
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _interrupt)


def ignore_stop_signals() -> None:
    """While cleanup runs: a second Ctrl-C must not cut it short and leave orphans."""
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)


def dies_with_parent(argv: list[str], sig: str = "TERM") -> list[str]:
    """`argv`, prefixed so the process gets `sig` when the process that spawned it dies."""
    if _SETPRIV is None:
        return argv
    return [_SETPRIV, "--pdeathsig", sig, "--", *argv]
