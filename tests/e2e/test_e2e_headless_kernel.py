"""The headless journey (issue 13): no D-Bus session bus, so no Secret Service; the session
lives in the Linux kernel keyring, end to end against the real provider.

Device code login, `auth status`, `auth token` from a new session keyring (what a later SSH
login of the same user gets), logout; nothing written to disk. The test's kernel keys are
scoped to it (tests/conftest.py: EXLS_KERNEL_KEY_SCOPE and a fresh session keyring).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from exls_testbed.cli import ExlsCli, ExlsProcess, Result, login_device, stored_session
from exls_testbed.idp import IdpServer
from exls_testbed.secret_service import SecretService
from test_e2e_session import _files, _leaks

from exls_core.session.kernel_store import KernelSessionStore
from kernel_testkit import scoped_keys

if TYPE_CHECKING:
    from exls_testbed.browser import Browser

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the Linux kernel keyring")

EMAIL = "alice@example.com"
ATTACKER = Path(__file__).resolve().parent.parent / "keyring_attacker.py"
ANOTHER_UID = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
# An SSH login to a server: no session bus. The store and the cache are named: on a machine
# that is itself a container sharing the host's users (as CI's may be), auto would choose the
# exls agent and no token cache (see test_e2e_container.py).
HEADLESS = {
    "DBUS_SESSION_BUS_ADDRESS": None,
    "EXLS_SESSION_STORE": "kernel",
    "EXLS_TOKEN_CACHE": "1",
}

# A new login session: its own session keyring, then exec exls (which keeps it).
NEW_LOGIN = """
import os, sys
from exls_core.session import kernel_keyring as kk
kk.join_new_session_keyring()
os.execv(sys.argv[1], sys.argv[1:])
"""


def in_a_new_login(exls: ExlsCli, *args: str) -> Result:
    import time

    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", NEW_LOGIN, str(exls.executable), *args],
        env=exls.env(HEADLESS),
        capture_output=True,
        text=True,
        timeout=60,
    )
    result = Result(args, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)
    exls.results.append(result)
    return result


def test_the_headless_journey_keeps_the_session_in_the_kernel_keyring(
    idp: IdpServer, exls: ExlsCli, browser: Browser, secret_service: SecretService
) -> None:
    idp.configure(skip_consent=True, device_interval=1)
    login = login_device(exls, browser, EMAIL, flow="device_code", env=HEADLESS)
    assert login.result.returncode == 0, login.result.describe()
    lines = login.result.stderr.splitlines()
    notes = [line for line in lines if "Linux kernel keyring" in line]
    assert len(notes) == 1, login.result.describe()  # said once, at login
    for words in ("in memory, never on disk", "later logins of this user", "reboot", "without use"):
        assert words in notes[0]
    assert lines.index(notes[0]) == lines.index(f"Logged in as {EMAIL}") + 1
    assert secret_service.search() == []  # nothing went to the Secret Service

    stored = KernelSessionStore().load()  # this test's scope: what exls stored
    assert stored is not None and stored.email == EMAIL and stored.flow == "device_code"
    keys = scoped_keys()
    assert "session" in keys and "token" in keys  # the session and the token cache
    # Another uid sharing this login's session keyring (sudo -u, su, runuser) gets nothing.
    attacker = subprocess.run(
        [*ANOTHER_UID, sys.executable, str(ATTACKER), "token", "session", "session.a.0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert attacker.returncode == 0, attacker.stderr
    assert json.loads(attacker.stdout) | {"tried": 0} == {"read": {}, "replaced": [], "tried": 0}

    status = exls.run("auth", "status", env=HEADLESS)
    assert status.returncode == 0, status.describe()
    assert "  keyring:  Linux kernel keyring (persistent keyring of uid" in status.stdout
    data = exls.run("auth", "status", "--json", env=HEADLESS).json()
    assert data["logged_in"] is True and data["email"] == EMAIL
    assert data["session_store"] == "kernel"
    assert data["keyring_backend"].startswith("Linux kernel keyring")
    assert data["keyring_plaintext"] is False

    token = in_a_new_login(exls, "auth", "token")
    assert token.returncode == 0 and token.stderr == "", token.describe()
    assert token.stdout == stored.access_token + "\n"
    again = in_a_new_login(exls, "auth", "token")  # the cache, once the persistent ring is linked
    assert again.stdout == token.stdout
    assert idp.token_grants("refresh_token") == []  # a valid token: no refresh
    assert in_a_new_login(exls, "auth", "status").returncode == 0

    logout = in_a_new_login(exls, "logout")
    assert logout.returncode == 0 and logout.stderr == "Logged out.\n", logout.describe()
    assert idp.events("revocation"), "exls did not revoke the refresh token"
    assert scoped_keys() == {}  # every key removed, the token cache too
    gone = exls.run("auth", "token", env=HEADLESS)
    assert gone.returncode == 1 and gone.stdout == ""
    assert 'You are not logged in. Run "exls login".' in gone.stderr

    secrets = {stored.access_token, stored.id_token or "", stored.refresh_token or ""} - {""}
    secrets |= {s.rsplit(".", 1)[1] for s in secrets if s.count(".") == 2}
    roots = [secret_service.home, Path(exls.base_env["XDG_RUNTIME_DIR"]), exls.tmpdir]
    files = _files(*(root for root in roots if root is not None))
    assert any("exalsius" in str(path) for path in files)  # exls did write its caches there
    for path in files:
        assert not _leaks(secrets, path.read_bytes()), f"token(s) in {path}"
    for result in exls.results:
        shown = result.stderr if result.args[:2] == ("auth", "token") else result.output
        assert not _leaks(secrets, shown.encode()), f"token(s) in the output of {result.args}"


def test_a_failed_login_keeps_the_kernel_session(
    idp: IdpServer, exls: ExlsCli, browser: Browser
) -> None:
    idp.configure(skip_consent=True, device_interval=1)
    first = login_device(exls, browser, EMAIL, flow="device_code", env=HEADLESS)
    assert first.result.returncode == 0, first.result.describe()
    before = KernelSessionStore().load()
    denied = login_device(exls, browser, "bob@example.com", env=HEADLESS, deny=True)
    assert denied.result.returncode == 1, denied.result.describe()
    assert KernelSessionStore().load() == before
    token = exls.run("auth", "token", env=HEADLESS)
    assert before is not None and token.stdout == before.access_token + "\n"
    assert exls.run("logout", env=HEADLESS).returncode == 0
    assert scoped_keys() == {}


# -- one session lock wherever exls runs from (issue 23, item 3) ------------------------------

HOLD_THE_LOCK = """
import sys
from exls_core.paths import lock_dir
from exls_core.session.locking import session_lock
with session_lock():
    print(lock_dir() / "session.lock", flush=True)
    sys.stdin.read()
"""
IN_OPEN = 0x20  # inotify(7)


def _first_open_or_exit(path: str, procs: list[ExlsProcess], timeout: float = 120) -> bool:
    """True once some process opens the file at path; False when one of procs exits first."""
    import ctypes
    import select
    import time

    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
    assert fd >= 0, os.strerror(ctypes.get_errno())
    try:
        assert libc.inotify_add_watch(fd, path.encode(), IN_OPEN) >= 0
        deadline = time.monotonic() + timeout  # a hang guard only
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0.1)[0]:
                return True
            if any(not proc.running() for proc in procs):
                return False
        raise AssertionError(f"nobody opened {path} within {timeout} s")
    finally:
        os.close(fd)


def test_exls_in_every_environment_of_a_user_refreshes_once(
    idp: IdpServer, exls: ExlsCli, browser: Browser, tmp_path: Path
) -> None:
    """An SSH shell, a cron job (no XDG_RUNTIME_DIR) and a shell with another TMPDIR refresh at
    once: one refresh grant, since they all take the store's one session lock."""

    idp.configure(skip_consent=True, device_interval=1, access_token_ttl=30)  # to refresh at once
    login = login_device(exls, browser, EMAIL, flow="device_code", env=HEADLESS)
    assert login.result.returncode == 0, login.result.describe()
    idp.configure(access_token_ttl=3600)
    before = KernelSessionStore().load()
    assert before is not None

    def place(name: str, runtime: bool) -> dict[str, str | None]:
        (tmp_path / f"tmp-{name}").mkdir(mode=0o700)
        env: dict[str, str | None] = {**HEADLESS, "TMPDIR": str(tmp_path / f"tmp-{name}")}
        if runtime:
            (tmp_path / f"run-{name}").mkdir(mode=0o700)
        env["XDG_RUNTIME_DIR"] = str(tmp_path / f"run-{name}") if runtime else None
        return env

    cron, ssh, desktop = place("cron", False), place("ssh", True), place("desktop", True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK],
        env=exls.env(cron),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        lock = holder.stdout.readline().strip()
        assert lock, "the lock holder failed"
        # While a process without XDG_RUNTIME_DIR holds the lock, exls with another runtime
        # directory and TMPDIR must wait for it (before: it took a lock of its own).
        early = [exls.start("auth", "token", env=ssh), exls.start("auth", "token", env=desktop)]
        if not _first_open_or_exit(lock, early):
            finished = [exls.finish(proc) for proc in early if not proc.running()]
            grants = len(idp.token_grants("refresh_token"))
            raise AssertionError(
                f"exls finished ({grants} refresh grant(s)) without waiting for the session "
                f"lock {lock} another process held: {finished[0].describe()}"
            )
        late = [exls.start("auth", "token", env=env) for env in (cron, ssh, desktop)]
    finally:
        holder.communicate("", timeout=60)
    results = [exls.finish(proc, timeout=90) for proc in early + late]
    for result in results:
        assert result.returncode == 0, result.describe()
    tokens = {result.stdout for result in results}
    assert len(tokens) == 1 and tokens != {before.access_token + "\n"}, tokens
    grants = idp.token_grants("refresh_token")
    assert [grant["status"] for grant in grants] == [200], [g["error"] for g in grants]
    after = KernelSessionStore().load()
    assert after is not None and tokens == {after.access_token + "\n"}


# -- a session in the other store (issue 23, item 4) -----------------------------------------


def test_logout_anywhere_revokes_and_removes_the_session_in_the_other_store(
    idp: IdpServer, exls: ExlsCli, browser: Browser, secret_service: SecretService
) -> None:
    """Logged in over SSH (kernel keyring), logged out in a desktop terminal (Secret Service),
    and the reverse (a desktop login, a logout with EXLS_SESSION_STORE=kernel)."""
    idp.configure(skip_consent=True, device_interval=1)
    for login_env, logout_env in ((HEADLESS, {}), ({}, {"EXLS_SESSION_STORE": "kernel"})):
        login = login_device(exls, browser, EMAIL, flow="device_code", env=login_env)
        assert login.result.returncode == 0, login.result.describe()
        if login_env:
            kernel = KernelSessionStore().load()
            refresh_token = kernel.refresh_token if kernel is not None else None
            other = "Linux kernel keyring"
        else:
            refresh_token = (stored_session(secret_service.search()) or {}).get("refresh_token")
            other = "SecretService"
        assert refresh_token

        status = exls.run("auth", "status", env=logout_env)
        assert status.returncode == 1, status.describe()
        assert "a session of alice@example.com is also kept in" in status.stdout, status.describe()
        assert other in status.stdout

        logout = exls.run("logout", env=logout_env)
        assert logout.returncode == 0, logout.describe()
        lines = logout.stderr.splitlines()
        assert len(lines) == 2 and lines[1] == "Logged out.", logout.describe()
        assert lines[0].startswith("Also removed the session kept in ") and other in lines[0]
        revoked = idp.events("revocation", token=refresh_token)
        assert revoked and revoked[0]["status"] == 200, "the left session was not revoked"
        assert idp.lookup(refresh_token)["kind"] is None
        assert scoped_keys() == {} and secret_service.search() == []
        idp.reset()
        idp.configure(skip_consent=True, device_interval=1)
