"""A session in a store other than the one in use (issue 23, item 4): logged in over SSH (the
kernel keyring), then `exls logout` or `exls auth status` where the keyring is in use, and the
reverse. Real processes, the real kernel keyring, a file keyring every process shares, and a
local provider that records revocations.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from session_testkit import FakeIdP, make_session

from exls_core.session import kernel_keyring as kk
from exls_core.session.kernel_store import KernelEntries, KernelSessionStore
from exls_core.session.model import Session
from exls_core.session.store import SessionStore
from kernel_testkit import members, scoped_keys

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the Linux kernel keyring")

CLI = "import sys; sys.argv = ['exls', *sys.argv[1:]]; from exls_core.cli import run; run()"


@pytest.fixture
def env(shared_keyring: dict[str, str]) -> dict[str, str]:
    return shared_keyring


def exls(env: dict[str, str], store: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
        env=env | {"EXLS_SESSION_STORE": store},
        capture_output=True,
        text=True,
        timeout=60,
    )


def stored(idp: FakeIdP) -> Session:
    return make_session(
        idp.issuer, email="ssh@example.com", refresh_token="rt-left", expires_at=time.time() + 900
    )


@pytest.mark.parametrize(
    ("logged_in_with", "logged_out_with"), [("kernel", "keyring"), ("keyring", "kernel")]
)
def test_logout_revokes_and_removes_a_session_in_the_other_store(
    env: dict[str, str], idp: FakeIdP, logged_in_with: str, logged_out_with: str
) -> None:
    session = stored(idp)
    where = KernelSessionStore() if logged_in_with == "kernel" else SessionStore()
    where.save(session)

    status = exls(env, logged_out_with, "auth", "status")
    assert status.returncode == 1 and status.stdout.startswith("You are not logged in.\n")
    assert "a session of ssh@example.com is also kept in" in status.stdout, status.stdout
    assert f"EXLS_SESSION_STORE={logged_in_with}" in status.stdout
    data = json.loads(exls(env, logged_out_with, "auth", "status", "--json").stdout)
    assert [(o["session_store"], o["email"]) for o in data["other_sessions"]] == [
        (logged_in_with, "ssh@example.com")
    ]

    logout = exls(env, logged_out_with, "logout")
    assert logout.returncode == 0, logout.stderr
    lines = logout.stderr.splitlines()
    assert lines[-1] == "Logged out." and lines[0].startswith("Also removed the session kept in ")
    assert [r[:2] for r in idp.revoked][:1] == [("rt-left", "refresh_token")]
    assert KernelSessionStore().load() is None and SessionStore().load() is None
    assert scoped_keys() == {}
    again = exls(env, logged_out_with, "logout")
    assert again.stderr == "You are not logged in.\n"


def test_status_in_use_also_names_the_other_session(env: dict[str, str], idp: FakeIdP) -> None:
    KernelSessionStore().save(stored(idp))
    SessionStore().save(make_session(idp.issuer, email="desk@example.com"))
    status = exls(env, "keyring", "auth", "status")
    assert status.returncode == 0 and status.stdout.startswith("Logged in as desk@example.com\n")
    assert "Linux kernel keyring" in status.stdout and "ssh@example.com" in status.stdout
    logout = exls(env, "keyring", "logout")
    assert logout.returncode == 0 and len(idp.revoked) >= 2, logout.stderr
    assert scoped_keys() == {} and SessionStore().load() is None


class OldExlsEntries(KernelEntries):
    """Where exls kept the session before issue 23: directly in the persistent keyring."""

    def _find(self, name: str) -> int | None:
        return kk.member(kk.persistent_keyring(), name)

    def _made_ring(self) -> int:
        return kk.persistent_keyring()


def test_a_session_an_older_exls_left_open_is_never_used_and_logout_ends_it(
    env: dict[str, str], idp: FakeIdP
) -> None:
    old = KernelSessionStore()
    old.keyring = OldExlsEntries()
    old.save(stored(idp))
    for serial, _ in list_old_keys():
        kk.set_permissions(serial, 0x3F3F0000)  # as that exls left them
    assert len(list_old_keys()) >= 2

    token = exls(env, "kernel", "auth", "token")
    assert token.returncode == 1 and token.stdout == "", token.stderr  # never read as a session
    status = exls(env, "kernel", "auth", "status")
    assert status.returncode == 1, status.stderr
    assert (
        "a session of ssh@example.com is also kept in the Linux kernel keyring, where an older "
        "exls left it open to other users; exls uses the store above; "
    ) in status.stdout, status.stdout
    logout = exls(env, "kernel", "logout")
    assert logout.returncode == 0, logout.stderr
    assert logout.stderr.startswith("Also removed the session kept in the Linux kernel keyring, ")
    assert [r[:2] for r in idp.revoked][:1] == [("rt-left", "refresh_token")]
    assert list_old_keys() == []


def list_old_keys() -> list[tuple[int, str]]:
    """The scope's keys linked directly in the persistent keyring."""
    found = []
    for serial in members(kk.persistent_keyring()):
        try:
            described = kk.describe(serial)
        except kk.KernelKeyringError:
            continue
        if described.startswith("user;") and described.split(";", 4)[4].startswith(
            kk.description("")
        ):
            found.append((serial, described))
    return found
