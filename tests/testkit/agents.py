"""exls agents started by a test: found, and none left behind.

An agent detaches (its starter exits at once), so it is nobody's child and the leak guard of
tests/conftest.py would not see it. :func:`agents_collected` makes this process a child
subreaper (``PR_SET_CHILD_SUBREAPER``) for one test: every agent the test starts becomes a
child of the test process, so the leak guard sees it, and this fixture reaps it when it
exits. A test that leaves an agent running fails; the agent is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
AGENT_NAME = "exls-agent"  # its comm (exls_core.session.agent.NAME), also as a zombie
SETTLE = 30.0  # seconds an agent told to stop may take on a loaded machine (a hang guard)


def _prctl(option: int, value: int) -> None:
    if ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl")


def _children_named(name: str) -> dict[int, str]:
    """pid -> state of this process's children whose comm is name."""
    found = {}
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        if comm == name and int(fields[1]) == me:
            found[int(entry.name)] = fields[0]
    return found


def running_agents() -> list[int]:
    return sorted(pid for pid, state in _children_named(AGENT_NAME).items() if state != "Z")


def reap_agents() -> None:
    for pid, state in _children_named(AGENT_NAME).items():
        if state == "Z":
            os.waitpid(pid, 0)


def wait_gone(pid: int, timeout: float = SETTLE) -> bool:
    """True once the agent pid has exited (and is reaped); False after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reap_agents()
        if pid not in running_agents() and not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.02)
    return False


@contextmanager
def agents_collected() -> Iterator[None]:
    """For one test: agents become this process's children; none may outlive the test."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    try:
        yield
        left = running_agents()
        deadline = time.monotonic() + SETTLE
        while left and time.monotonic() < deadline:  # told to stop just before the end
            time.sleep(0.05)
            reap_agents()
            left = running_agents()
    finally:
        leftovers = running_agents()
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        for pid in leftovers:
            os.waitpid(pid, 0)
        reap_agents()
        _prctl(PR_SET_CHILD_SUBREAPER, 0)
    assert not leftovers, f"the test left exls agents running: {leftovers}"


def _socket_for(env: Mapping[str, str]) -> Path | None:
    """Where exls in this environment finds its agent (exls_core.session.agent_protocol);
    None where that is the machine's shared default (not a test's own place)."""
    if env.get("EXLS_AGENT_SOCKET"):
        return Path(env["EXLS_AGENT_SOCKET"])
    runtime = env.get("XDG_RUNTIME_DIR", "").strip()
    if runtime and os.path.isdir(runtime):
        return Path(runtime, "exalsius", "agent.sock")
    for name in ("TMPDIR", "TEMP", "TMP"):
        if env.get(name) and os.path.isdir(env[name]):
            return Path(env[name], f"exls-{os.getuid()}", "agent.sock")
    return None


def stop_agent_for(env: Mapping[str, str]) -> None:
    """Stop the agent exls in this environment would use, if one runs: drop what it caches and
    holds (no revocation: a test's provider may be gone), then wait for its socket to go.

    For fixtures whose exls runs may start one as a token cache (a keyring store in a
    container that shares the host's users, as this test machine may be)."""
    from exls_core.session import agent_protocol as proto

    path = _socket_for(env)
    if path is None or not path.exists():
        return
    for op in ("cache_drop", "clear"):
        with contextlib.suppress(proto.ExlsError, OSError):
            proto.call(str(path), {"op": op}, timeout=SETTLE)
    deadline = time.monotonic() + SETTLE
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
