"""What a test leaves running: threads of this process and its child processes.

``tests/conftest.py`` takes a snapshot before every test and fails the test if a thread or a
child process it started is still running afterwards. Something still finishing its last step
(a server thread after shutdown) is waited for, up to ``SETTLE`` seconds, as it ends at once on
an idle machine; whatever still runs then was never told to stop, and would print into, or
change the environment of, the tests that follow.

Only work that is genuinely longer-lived is allowed, by registering it here with the reason:
``keep_process(pid, why)`` for a session's server (the test identity provider, Chromium's
driver) and ``keep_while(predicate, why)`` for a package's background work (the adversarial
scheduler's scenarios, until its package ends).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SETTLE = 30.0  # seconds: only what never ends waits this long


@dataclass(frozen=True)
class Child:
    pid: int
    started: int  # clock ticks after boot: tells a reused pid apart
    command: str

    def running(self) -> bool:
        stat = _stat(self.pid)
        return stat is not None and stat[2] == self.started and stat[1] != "Z"

    def cwd(self) -> Path | None:
        try:
            return Path(os.readlink(f"/proc/{self.pid}/cwd"))
        except OSError:
            return None


_kept_processes: dict[int, str] = {}
_kept_while: list[tuple[Callable[[threading.Thread | Child], bool], str]] = []  # (what, why)


def keep_process(pid: int, why: str) -> None:
    """Allow a session-scoped server process to outlive the test that started it."""
    _kept_processes[pid] = why


def forget_process(pid: int) -> None:
    _kept_processes.pop(pid, None)


def keep_while(
    predicate: Callable[[threading.Thread | Child], bool], why: str
) -> Callable[[], None]:
    """Allow threads/children matching ``predicate``; returns the function that ends it."""
    entry = (predicate, why)
    _kept_while.append(entry)
    return lambda: _kept_while.remove(entry)


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a process, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[1]), fields[0], int(fields[19])


def _has_children() -> bool:
    """One system call; scanning /proc costs tens of milliseconds (most tests have none)."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)  # reaps nothing
    except ChildProcessError:
        return False
    return True


def children() -> set[Child]:
    """The running (not zombie) child processes of this process."""
    if not _has_children():
        return set()
    me = os.getpid()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        if stat is None or stat[0] != me or stat[1] == "Z":
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            command = "?"
        found.add(Child(int(entry.name), stat[2], command.strip()[:200]))
    return found


@dataclass(frozen=True)
class Snapshot:
    threads: frozenset[threading.Thread]
    children: frozenset[Child]

    @classmethod
    def take(cls) -> Snapshot:
        return cls(frozenset(threading.enumerate()), frozenset(children()))


def _allowed(thing: threading.Thread | Child) -> bool:
    if isinstance(thing, Child) and thing.pid in _kept_processes:
        return True
    return any(predicate(thing) for predicate, _ in _kept_while)


def left_running(before: Snapshot) -> list[str]:
    """What was started since ``before`` and is still running after ``SETTLE`` seconds."""
    deadline = time.monotonic() + SETTLE
    while True:
        threads = [
            t
            for t in threading.enumerate()
            if t not in before.threads and t.is_alive() and not _allowed(t)
        ]
        procs = [c for c in children() if c not in before.children and not _allowed(c)]
        if not threads and not procs:
            return []
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        if threads:
            threads[0].join(min(remaining, 0.5))
        else:
            time.sleep(min(remaining, 0.05))
    return [f"thread {t.name!r} (daemon={t.daemon})" for t in threads] + [
        f"child process {c.pid}: {c.command}" for c in procs if c.running()
    ]
