"""Who else can use the session's kernel keys (issue 23, items 1 and 2): nobody but this uid,
and this uid only with possession.

Real kernel keys and real processes: the session is stored as `exls login` stores it and read
by `exls auth token` (which fills the token cache), then tests/keyring_attacker.py, run as
another uid that shares this test's session keyring (`setpriv`, as `sudo -u`, `su` and
`runuser` leave it on Debian) or as this uid in another user namespace (`unshare -r`, as a
rootless container with keep-id), tries to find, read and replace every key of the scope.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from session_testkit import CLIENT_ID, make_session

from exls_core.session import kernel_keyring as kk
from exls_core.session.kernel_store import KernelSessionStore
from exls_core.session.token_cache import TokenCache
from kernel_testkit import scoped_keys

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the Linux kernel keyring")

ATTACKER = Path(__file__).resolve().parent.parent / "keyring_attacker.py"
ANOTHER_UID = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
ISSUER = "https://idp.example/"
CLI = "import sys; sys.argv = ['exls', *sys.argv[1:]]; from exls_core.cli import run; run()"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DBUS_SESSION_BUS_ADDRESS"}
    env.update(EXLS_SESSION_STORE="kernel", EXLS_AUTH_ISSUER=ISSUER, EXLS_AUTH_CLIENT_ID=CLIENT_ID)
    return env


def exls(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, *args], env=_env(), capture_output=True, text=True, timeout=60
    )


def attack(*wrapper: str) -> dict[str, Any]:
    if shutil.which(wrapper[0]) is None:
        pytest.skip(f"{wrapper[0]} is not installed")
    done = subprocess.run(
        [*wrapper, sys.executable, str(ATTACKER), "token", "session", "session.a.0"],
        env=os.environ | {"PYTHONSAFEPATH": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def link_persistent_into_the_session_keyring() -> None:
    """What `keyctl get_persistent @s` does (and exls did before): anyone who shares the
    session keyring then possesses the persistent keyring."""
    kk._keyctl("get_persistent", kk._GET_PERSISTENT, -1, kk._serial(kk.SESSION_KEYRING))


@pytest.fixture
def logged_in() -> str:
    """A session in the kernel store and its token cached, as login and `auth token` leave them."""
    session = make_session(
        ISSUER, access_token="at-victim", refresh_token="rt-victim", expires_at=time.time() + 3000
    )
    KernelSessionStore(cache=TokenCache()).save(session)
    token = exls("auth", "token")
    assert (token.returncode, token.stdout, token.stderr) == (0, "at-victim\n", "")
    assert {"token", "session", "session.a.0"} <= set(scoped_keys())
    return "at-victim\n"


@pytest.mark.parametrize(
    "linked", [False, True], ids=["as-exls-left-it", "persistent-linked-in-@s"]
)
def test_another_uid_sharing_the_session_keyring_can_neither_read_nor_replace_the_keys(
    logged_in: str, linked: bool
) -> None:
    if linked:
        link_persistent_into_the_session_keyring()
    found = attack(*ANOTHER_UID)
    assert found["read"] == {} and found["replaced"] == [], found
    assert exls("auth", "token").stdout == logged_in
    assert KernelSessionStore().load() is not None


def test_this_uid_in_another_user_namespace_cannot_read_the_keys_by_serial(
    logged_in: str,
) -> None:
    unshare = ["unshare", "-r"]
    if subprocess.run([*unshare, "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare -r is not allowed here")
    found = attack(*unshare)
    assert found["read"] == {} and found["replaced"] == [], found
    assert exls("auth", "token").stdout == logged_in


def test_every_key_gives_nothing_without_possession(logged_in: str) -> None:
    for name, (_serial, described) in scoped_keys().items():
        perm = int(described.split(";")[3], 16)
        assert perm & 0x00FFFFFF == 0, f"{name}: {described}"  # user, group, other: nothing
        assert perm == kk.PRIVATE


PLANT = """
import sys
from exls_core.session import kernel_keyring as kk
from kernel_testkit import members
persistent = next(s for s in members(kk.keyring_id(kk.SESSION_KEYRING))
                  if kk.describe(s).startswith("keyring;") and "_persistent." in kk.describe(s))
gate = kk._new_keyring(kk.GATE, persistent)
store = kk._new_keyring(kk.STORE, gate)
key = kk.add(store, "token", sys.argv[1].encode())
for serial in (gate, store, key):
    kk.set_permissions(serial, 0x3F3F3F3F)
print("planted", flush=True)
"""


def test_a_gate_another_uid_planted_is_never_used() -> None:
    """Before the user's first login, another uid that possesses the persistent keyring puts a
    keyring of exls's name there, open to all: exls refuses it rather than store into it."""
    link_persistent_into_the_session_keyring()
    planted = subprocess.run(
        [*ANOTHER_UID, sys.executable, "-c", PLANT, "at-attacker"],
        env=os.environ | {"PYTHONPATH": str(ATTACKER.parent)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert planted.stdout == "planted\n", planted.stderr
    token = exls("auth", "token")
    assert token.returncode == 1 and token.stdout == "", token.stderr
    assert "is not one exls made" in token.stderr
    session = make_session(ISSUER, access_token="at-victim", refresh_token="rt-victim")
    with pytest.raises(Exception, match="is not one exls made"):
        KernelSessionStore(cache=TokenCache()).save(session)
