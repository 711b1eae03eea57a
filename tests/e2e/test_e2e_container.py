"""The container journey (issue 21): seccomp refuses the kernel keyring, there is no D-Bus, so
the exls agent holds the session in memory; end to end against the real provider.

Every exls here runs as a container's would: a seccomp filter refusing add_key, keyctl and
request_key with EPERM (Docker's default profile does; installed by a launcher in the
process before it execs exls), no DBUS_SESSION_BUS_ADDRESS, no XDG_RUNTIME_DIR (a
`docker exec` shell has none), each run in its own session and process group, started
from `/`. HOME is 0755 and TMPDIR 1777, as in a container image, so another uid can run too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from exls_testbed.cli import ExlsCli, Result, login_device
from test_e2e_session import _leaks

from exls_core.session import kernel_keyring as kk
from testkit.agents import agents_collected, running_agents, wait_gone

if TYPE_CHECKING:
    from exls_testbed.browser import Browser
    from exls_testbed.idp import IdpServer

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="seccomp, SO_PEERCRED")

EMAIL = "alice@example.com"
OTHER = "bob@example.com"
NOBODY = 65534

# Installs the filter, then execs exls from /.
LAUNCHER = """#!{python}
import ctypes, os, struct, sys
FIRST = {first}  # add_key; request_key and keyctl follow (x86_64: 248, 249, 250)
ALLOW, EPERM = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
program = [
    (0x20, 0, 0, 0),  # ld seccomp_data.nr
    (0x15, 3, 0, FIRST),  # jeq add_key -> refuse
    (0x15, 2, 0, FIRST + 1),  # jeq request_key -> refuse
    (0x15, 1, 0, FIRST + 2),  # jeq keyctl -> refuse
    (0x06, 0, 0, ALLOW),
    (0x06, 0, 0, EPERM),
]
raw = b"".join(struct.pack("HBBI", *op) for op in program)
buffer = ctypes.create_string_buffer(raw, len(raw))
fprog = struct.pack("HxxxxxxP", len(program), ctypes.addressof(buffer))
fprog_buffer = ctypes.create_string_buffer(fprog, len(fprog))
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0, "PR_SET_NO_NEW_PRIVS"
assert libc.prctl(22, 2, fprog_buffer, 0, 0) == 0, "PR_SET_SECCOMP"
os.chdir("/")
exe = {exe!r}
if os.getuid() == 0:
    os.execv(exe, [exe, *sys.argv[1:]])
# Another uid cannot exec this machine's Python (it lives under /root, 0700) except as the
# first exec after setpriv, which ran this launcher: run the console script in this process.
import runpy
sys.argv = [exe, *sys.argv[1:]]
runpy.run_path(exe, run_name="__main__")
"""
# The same as another user (as `docker exec --user`): setpriv, then the launcher above.
AS_USER = """#!{python}
import os, sys
os.execvp("setpriv", ["setpriv", "--reuid={uid}", "--regid={uid}", "--clear-groups",
                      {python!r}, {launcher!r}, *sys.argv[1:]])
"""


class Container:
    """A container's file system as far as exls sees it: HOME and TMPDIR under one root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.tmp = root / "tmp"
        self.home.mkdir(mode=0o755)
        self.tmp.mkdir()
        os.chmod(self.tmp, 0o1777)  # noqa: S103 (as in a container image)
        self.env: dict[str, str | None] = {
            "DBUS_SESSION_BUS_ADDRESS": None,
            "XDG_RUNTIME_DIR": None,
            "XDG_CONFIG_HOME": None,
            "XDG_CACHE_HOME": None,
            "XDG_STATE_HOME": None,
            "PYTHON_KEYRING_BACKEND": None,
            "HOME": str(self.home),
            "TMPDIR": str(self.tmp),
        }

    def launcher(self, exe: str | Path, uid: int | None = None) -> Path:
        first = kk._FIRST_NUMBER[os.uname().machine]
        path = self.root / f"run-{Path(exe).name}"
        path.write_text(LAUNCHER.format(python=sys.executable, first=first, exe=str(exe)))
        path.chmod(0o755)
        if uid is None:
            return path
        user = self.root / f"run-as-{uid}-{Path(exe).name}"
        user.write_text(AS_USER.format(python=sys.executable, uid=uid, launcher=str(path)))
        user.chmod(0o755)
        return user

    @property
    def socket(self) -> Path:
        return self.tmp / f"exls-{os.getuid()}" / "agent.sock"


@pytest.fixture
def container() -> Iterator[Container]:
    # Not under pytest's own temporary directory: that is 0700, and another uid must get in.
    root = Path(tempfile.mkdtemp(prefix="exls-e2e-container-"))
    root.chmod(0o755)
    try:
        with agents_collected():
            yield Container(root)
    finally:
        shutil.rmtree(root)


@pytest.fixture
def cexls(exls: ExlsCli, container: Container) -> ExlsCli:
    """exls as the container runs it (seccomp, no D-Bus, from /, its own session)."""
    cli = ExlsCli(container.launcher(exls.executable), exls.env(container.env))
    cli.tmpdir = container.tmp
    return cli


def _token(cli: ExlsCli) -> str:
    result = cli.run("auth", "token")
    assert result.returncode == 0 and result.stderr == "", result.describe()
    return result.stdout.strip()


def _processes_leaking(secrets: set[str]) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        for name in ("cmdline", "environ"):
            try:
                data = (entry / name).read_bytes()
            except OSError:
                continue  # gone, or not ours to read
            if leaked := _leaks(secrets, data):
                found.append(f"/proc/{entry.name}/{name}: {leaked}")
    return found


def test_the_container_journey_keeps_the_session_in_the_agent(
    idp: IdpServer,
    exls: ExlsCli,
    cexls: ExlsCli,
    container: Container,
    browser: Browser,
) -> None:
    # The filter is in force: the kernel keyring is refused in exls's processes.
    probe = ExlsCli(container.launcher(sys.executable), exls.env(container.env))
    refused = probe.run(
        "-c", "from exls_core.session import kernel_keyring as kk; kk.persistent_keyring()"
    )
    assert "KeyringRefused" in refused.stderr and "Operation not permitted" in refused.stderr

    idp.configure(skip_consent=True, device_interval=1, access_token_ttl=30)  # to renew soon
    login = login_device(cexls, browser, EMAIL)
    assert login.result.returncode == 0, login.result.describe()
    idp.configure(access_token_ttl=3600)
    lines = login.result.stderr.splitlines()
    notes = [line for line in lines if "held in memory by the exls agent" in line]
    assert len(notes) == 1, login.result.describe()  # said once, after "Logged in as"
    assert lines.index(notes[0]) == lines.index(f"Logged in as {EMAIL}") + 1
    assert "gone when the container" in notes[0] and str(container.socket) in notes[0]
    (agent,) = running_agents()
    assert f"pid {agent}" in notes[0]
    mode = container.socket.parent.stat().st_mode
    assert stat.S_IMODE(mode) == 0o700 and container.socket.parent.stat().st_uid == os.getuid()

    # auth status, text and JSON: the store and the agent's pid.
    status = cexls.run("auth", "status")
    assert status.returncode == 0, status.describe()
    assert f"Logged in as {EMAIL}" in status.stdout
    assert f"  agent:    exls agent (pid {agent}, socket {container.socket}" in status.stdout
    data = cexls.run("auth", "status", "--json").json()
    assert (data["session_store"], data["agent_pid"], data["email"]) == ("agent", agent, EMAIL)
    assert data["refreshable"] is True

    # Ten `exls auth token` at once, each a new `docker exec`: one renewal, in the agent.
    procs = [cexls.start("auth", "token") for _ in range(10)]
    results = [cexls.finish(proc, timeout=90) for proc in procs]
    assert all(r.returncode == 0 and r.stderr == "" for r in results), results[0].describe()
    tokens = {r.stdout.strip() for r in results}
    assert len(tokens) == 1
    (token,) = tokens
    grants = idp.token_grants("refresh_token")
    assert [g["status"] for g in grants] == [200], [g["error"] for g in grants]
    spent_refresh_token = grants[0]["params"]["refresh_token"]
    assert _token(cexls) == token  # valid for an hour now: served as it is
    assert running_agents() == [agent]

    # Another uid in the same container gets no token: not by default, not through the socket.
    nobody = ExlsCli(container.launcher(exls.executable, uid=NOBODY), exls.env(container.env))
    theirs = nobody.run("auth", "token")
    assert (theirs.returncode, theirs.stdout) == (1, ""), theirs.describe()
    assert "You are not logged in" in theirs.stderr
    aimed = nobody.run("auth", "token", env={"EXLS_AGENT_SOCKET": str(container.socket)})
    assert (aimed.returncode, aimed.stdout) == (1, ""), aimed.describe()
    assert f"Refusing the exls agent's {container.socket.parent}" in aimed.stderr

    # Nothing on disk, in argv or in environments (the agent's own included).
    secrets = {token, spent_refresh_token}
    assert _processes_leaking(secrets) == []

    # A login as another account hands the agent the new session: no second agent.
    again = login_device(cexls, browser, OTHER)
    assert again.result.returncode == 0, again.result.describe()
    assert running_agents() == [agent]
    assert cexls.run("auth", "status", "--json").json()["email"] == OTHER
    other_token = _token(cexls)
    assert other_token != token
    secrets.add(other_token)

    # Logout revokes in the agent, which forgets the session and exits.
    before = len(idp.events("revocation"))
    logout = cexls.run("logout")
    assert (logout.returncode, logout.stderr) == (0, "Logged out.\n"), logout.describe()
    revocations = idp.events("revocation")[before:]
    assert revocations and revocations[0]["params"]["token_type_hint"] == "refresh_token"
    assert revocations[0]["revoked_kind"] == "RefreshToken"
    secrets.add(revocations[0]["params"]["token"])
    assert wait_gone(agent)
    assert not container.socket.exists()
    gone = cexls.run("auth", "token")
    assert gone.returncode == 1 and "You are not logged in" in gone.stderr

    # Every file under /tmp (the container's HOME and TMPDIR are there) and /dev/shm, but the
    # provider's own directory: it is the other end, not a place exls writes.
    provider = idp.log_path.parent
    files = [p for p in _regular_files("/tmp", "/dev/shm") if provider not in p.parents]
    leaked = [f"{p}: {hit}" for p in files if (hit := _leaks(secrets, _read(p)))]
    assert leaked == []
    for result in [*cexls.results, login.result, again.result]:
        shown = result.stderr if result.args[:2] == ("auth", "token") else result.output
        assert not _leaks(secrets, shown.encode()), f"a token in the output of {result.args}"


def _regular_files(*roots: str) -> list[Path]:
    """Regular files under roots, not following symlinks; what vanishes meanwhile is skipped
    (other programs use /tmp too)."""
    found = []
    for root in roots:
        for directory, _, names in os.walk(root):  # errors (vanished, unreadable) are skipped
            for name in names:
                path = Path(directory, name)
                with contextlib.suppress(OSError):
                    if stat.S_ISREG(path.lstat().st_mode):
                        found.append(path)
    return found


def _read(path: Path) -> bytes:
    """The file's bytes; nothing when it is gone or no longer a regular file (never blocks)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return b""
    with os.fdopen(fd, "rb") as file:
        try:
            return file.read() if stat.S_ISREG(os.fstat(fd).st_mode) else b""
        except OSError:
            return b""


def test_a_killed_agent_says_the_session_is_gone(
    idp: IdpServer, cexls: ExlsCli, container: Container, browser: Browser
) -> None:
    idp.configure(skip_consent=True, device_interval=1)
    login = login_device(cexls, browser, EMAIL)
    assert login.result.returncode == 0, login.result.describe()
    (agent,) = running_agents()
    os.kill(agent, 9)  # an OOM kill
    assert wait_gone(agent)
    for args in (("auth", "token"), ("auth", "status")):
        result: Result = cexls.run(*args)
        assert (result.returncode, result.stdout) == (1, ""), result.describe()
        assert "held in memory by the exls agent, which is gone" in result.stderr
        assert 'Run "exls login"' in result.stderr
    assert login_device(cexls, browser, EMAIL).result.returncode == 0
    (new,) = running_agents()
    assert cexls.run("logout").returncode == 0
    assert wait_gone(new)
