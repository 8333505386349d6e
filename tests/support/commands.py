"""Long-running commands as a person runs them in a terminal, and the processes they leave.

A `Command` is a foreground job: its own process group, as a shell gives it, so
`ctrl_c()` reaches the group the way a terminal's Ctrl-C does, while
`sigterm()` reaches only the command itself, as `kill PID` does. A thread
records every process the command starts, at any depth, so processes that
detach into their own session, or are orphaned, are still found afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from tests.support.engines import dies_with_parent

Pid = tuple[int, int]  # (pid, start time in ticks): a pid the kernel reuses is another process


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _identity(pid: int) -> Pid | None:
    fields = _stat(pid)
    return (pid, int(fields[19])) if fields else None


def running(process: Pid) -> bool:
    fields = _stat(process[0])
    return bool(fields) and fields[0] != "Z" and int(fields[19]) == process[1]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return "?"


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _stat(int(entry.name))
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


class Command:
    def __init__(self, argv: Sequence[str], cwd: Path, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._seen: dict[Pid, str] = {}
        self._lock = threading.Lock()
        self._watching = True
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    @property
    def seen(self) -> dict[Pid, str]:
        """Every process the command has started so far, by identity: command line."""
        with self._lock:
            return dict(self._seen)

    def _watch(self) -> None:
        pids = {self.popen.pid}
        while self._watching:
            for pid in pids:
                found = _identity(pid)
                if found and found not in self._seen:
                    with self._lock:
                        self._seen[found] = cmdline(pid)
            time.sleep(0.05)
            pids = descendants(self.popen.pid)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.output(), re.M):
            if self.popen.poll() is not None:
                raise AssertionError(
                    f"exited {self.popen.returncode} before printing {pattern!r}:\n"
                    + self.output()[-4000:]
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} within {timeout}s:\n{self.output()[-4000:]}")
            time.sleep(0.1)

    def wait_for_process(self, pattern: str, timeout: float) -> None:
        """Until a process whose command line matches `pattern` runs under this command."""
        deadline = time.monotonic() + timeout
        while not any(re.search(pattern, cmd) for cmd in self.seen.values()):
            assert self.popen.poll() is None, self.output()[-4000:]
            assert time.monotonic() < deadline, f"no {pattern!r} process within {timeout}s"
            time.sleep(0.1)

    def ctrl_c(self) -> None:
        os.killpg(self.popen.pid, signal.SIGINT)

    def sigterm(self) -> None:
        self.popen.send_signal(signal.SIGTERM)

    def stopped_within(self, seconds: float) -> float:
        """Seconds until the command and every process it ever started are gone.

        Fails, naming the survivors (and then killing them), past `seconds`."""
        started = time.monotonic()
        deadline = started + seconds
        while time.monotonic() < deadline:
            alive = [p for p in self.seen if running(p)]  # a copy: the watcher adds
            if not alive and self.popen.poll() is not None:
                self._watching = False
                return time.monotonic() - started
            time.sleep(0.1)
        self._watching = False
        survivors = {p: cmd for p, cmd in self.seen.items() if running(p)}
        for pid, _ in survivors:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        raise AssertionError(
            f"still running {seconds}s after the signal: {sorted(survivors.values())}\n"
            + self.output()[-3000:]
        )

    def kill(self) -> None:
        """Teardown for a test that failed midway: nothing of ours outlives it."""
        self._watching = False
        for process in self.seen:
            if running(process):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process[0], signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)


def run_to_end(
    argv: Sequence[str], timeout: float, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """subprocess.run, but a test stopped by Ctrl-C or SIGTERM stops the command
    gracefully (SIGTERM, then a wait) instead of SIGKILL, so its own cleanup runs;
    if pytest dies outright, the command gets SIGTERM from the kernel."""
    with subprocess.Popen(
        dies_with_parent(list(argv)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,  # type: ignore[call-overload]
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except BaseException:
            proc.terminate()
            try:
                proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
