"""The session in the real Linux kernel keyring: layout, permissions, interruption, faults.

Every test runs in its own anonymous session keyring with its own key scope (tests/conftest.py),
so it sees only its own keys in the persistent keyring; faults are injected at the syscall.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Any

import keyring
import keyring.core
import pytest
from keyring.backends import fail
from session_testkit import Crash, MemoryKeyring, jwt_like, make_session

from exls_core.config import Settings
from exls_core.session import chunks
from exls_core.session import kernel_keyring as kk
from exls_core.session.kernel_store import (
    REFUSED_HINT,
    KernelEntries,
    KernelSessionStore,
    login_note,
)
from exls_core.session.keyring_calls import KeyringFailure
from exls_core.session.model import HotRecord, Session
from exls_core.session.selection import open_store
from exls_core.session.store import SessionStore, StoreError
from kernel_testkit import scoped_keys

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the Linux kernel keyring")

ISSUER = "https://exalsius.eu.auth0.com/"


def realistic(access: int = 950, id_token: int = 1400, **overrides: object) -> Session:
    tokens = {
        "access_token": jwt_like(access, f"at{overrides.get('flow', '')}"),
        "id_token": jwt_like(id_token, "id"),
        "refresh_token": jwt_like(120, "rt"),
    }
    return make_session(ISSUER, **{**tokens, **overrides})


def names() -> set[str]:
    return set(scoped_keys())


def test_a_session_round_trips_in_private_keys_of_the_persistent_keyring() -> None:
    store = KernelSessionStore()
    session = realistic()
    store.save(session)
    pieces = chunks.split(session.to_json())
    assert len(pieces) > 1  # chunked as the keyring store does
    assert names() == {"session", *(chunks.chunk_name("a", i) for i in range(len(pieces)))}
    for _serial, described in scoped_keys().values():
        kind, uid, _gid, perm, _ = described.split(";", 4)
        assert (kind, int(uid)) == ("user", os.getuid())
        assert int(perm, 16) & 0xFFFF == 0, f"group or other may touch {described}"
        assert int(perm, 16) == kk.PRIVATE
    assert KernelSessionStore().load() == session  # another process would read the same
    assert KernelSessionStore().load_hot() == HotRecord.of(session)


def test_replacing_and_clearing_leave_no_key_behind() -> None:
    store = KernelSessionStore()
    store.save(realistic(flow="old"))
    new = realistic(800, 1000, flow="new")
    store.save(new)
    assert store.load() == new
    assert {n.split(".")[1] for n in names() if n != "session"} == {"b"}  # the other slot
    assert store.clear() is True
    assert names() == set()
    assert store.load() is None
    assert store.clear() is False


def test_a_new_login_session_finds_the_session() -> None:
    session = realistic()
    KernelSessionStore().save(session)
    kk.join_new_session_keyring()  # what a later SSH login of this user starts with
    assert KernelSessionStore().load() == session


FIRST_IN_A_WORKER_THREAD = """
import sys, threading, time
from exls_core.session.kernel_store import KernelSessionStore
from exls_core.session.model import Session

session = Session(issuer="https://exalsius.eu.auth0.com/", client_id="c", access_token="at",
                  expires_at=time.time() + 3600, refresh_token="rt", id_token="id",
                  scopes=("openid",), flow="device_code", subject="s", email=None,
                  logged_in_at=time.time())
store = KernelSessionStore()
errors = []

def use(action):
    try:
        action()
    except Exception as exc:
        errors.append(repr(exc))

def in_thread(action):
    thread = threading.Thread(target=use, args=(action,))
    thread.start()
    thread.join()

in_thread(lambda: store.save(session))  # a worker thread is the first to touch the kernel
in_thread(lambda: store.load() == session or errors.append("another thread: no session"))
use(lambda: store.load() == session or errors.append("the main thread: no session"))
print(errors)
"""


def test_a_store_first_used_in_a_worker_thread_serves_every_thread() -> None:
    # A thread's process keyring lives in that thread's credentials: the persistent keyring
    # linked there by the first thread gives no other thread possession (EACCES on its keys;
    # a thread pool calling exls_core.access_token() meets this).
    import subprocess

    result = subprocess.run(
        [sys.executable, "-c", FIRST_IN_A_WORKER_THREAD], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert KernelSessionStore().load() is not None


# --- interruption: the keyring store's guarantee, on kernel keys


class FailingEntries(KernelEntries):
    """Real kernel keys; write number fail_on (1-based) and all later ones raise."""

    def __init__(self, fail_on: int | None = None, error: type[BaseException] = Crash) -> None:
        super().__init__()
        self.fail_on, self.error, self.writes = fail_on, error, 0

    def _write(self) -> None:
        self.writes += 1
        if self.fail_on is not None and self.writes >= self.fail_on:
            raise self.error("injected")

    def set(self, name: str, value: str) -> None:
        self._write()
        super().set(name, value)

    def delete(self, name: str) -> None:
        self._write()
        super().delete(name)


def store_with(entries: KernelEntries) -> SessionStore:
    store = KernelSessionStore()
    store.keyring = entries
    return store


@pytest.mark.parametrize("operation", ["save", "logout"])
@pytest.mark.parametrize("error", [Crash, KeyringFailure], ids=["crash", "kernel error"])
def test_interrupted_at_every_write_the_kernel_store_holds_old_or_new(
    operation: str, error: type[BaseException]
) -> None:
    old, new = realistic(flow="old"), realistic(1100, 1500, flow="new")

    def run(store: SessionStore) -> None:
        store.save(new) if operation == "save" else store.clear()

    KernelSessionStore().save(old)
    counting = FailingEntries()
    run(store_with(counting))
    total = counting.writes
    for n in range(1, total + 2):  # n = total + 1: nothing fails
        KernelSessionStore().save(old)
        try:
            run(store_with(FailingEntries(n, error)))
        except (Crash, StoreError):
            assert n <= total
        loaded = KernelSessionStore().load()
        assert loaded in (old, new if operation == "save" else None), f"mixed after write {n}"
        # Whatever the interruption left behind, the next store cleans it up.
        later = realistic(300, 300, flow="later")
        KernelSessionStore().save(later)
        assert KernelSessionStore().load() == later
        assert len(names()) == 1 + len(chunks.split(later.to_json())), f"garbage after {n}"


# --- faults from the kernel: quota, refusal


def inject(monkeypatch: pytest.MonkeyPatch, code: int, only: str | None = None) -> None:
    """Every system call (or only those named ``only``) fails with errno code."""
    real = kk._syscall

    def failing(operation: str, which: int, *args: Any) -> int:
        if only is None or operation == only:
            raise kk.error_for(code, operation)
        return real(operation, which, *args)

    monkeypatch.setattr(kk, "_syscall", failing)


def test_a_full_quota_fails_with_a_clear_message_and_keeps_the_old_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old = realistic(flow="old")
    KernelSessionStore().save(old)
    with monkeypatch.context() as patched, pytest.raises(StoreError) as caught:
        inject(patched, errno.EDQUOT, only="add_key")
        KernelSessionStore().save(realistic(flow="new"))
    assert caught.value.message == (
        "Failed to store token: the kernel keyring quota of this user is full "
        "(add_key: Disk quota exceeded)"
    )
    hint = caught.value.hint or ""
    assert "/proc/sys/kernel/keys/" in hint and "maxbytes" in hint and "bytes" in hint
    assert KernelSessionStore().load() == old


@pytest.mark.parametrize("code", [errno.EPERM, errno.ENOSYS])
def test_a_refusing_kernel_fails_the_kernel_store_with_the_options(
    monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    inject(monkeypatch, code)
    store = KernelSessionStore()
    with pytest.raises(StoreError) as caught:
        store.check_usable()
    assert caught.value.message.startswith(
        "Failed to store token: the kernel keyring is not available here (keyctl get_persistent: "
    )
    assert caught.value.hint == REFUSED_HINT
    for option in ("keyctl is allowed", "Secret Service", "PYTHON_KEYRING_BACKEND", "seccomp"):
        assert option in REFUSED_HINT


@pytest.fixture
def no_keyring_backend() -> Any:
    previous = keyring.core._keyring_backend
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.core._keyring_backend = previous


@pytest.fixture
def on_a_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rules for a machine, not for a container sharing the host's users (which this
    test machine may well be: see test_agent_store for that rule)."""
    monkeypatch.setattr("exls_core.session.selection.shares_host_keyring", lambda: False)


@pytest.mark.parametrize("code", [errno.EPERM, errno.ENOSYS])
def test_auto_where_the_kernel_refuses_holds_the_session_in_the_agent(
    no_keyring_backend: None, on_a_host: None, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    inject(monkeypatch, code)
    assert open_store(Settings()).kind == "agent"


# --- which store


def test_auto_picks_the_kernel_keyring_where_keyring_has_no_backend(
    no_keyring_backend: None, on_a_host: None
) -> None:
    assert open_store(Settings()).kind == "kernel"


def test_auto_keeps_a_usable_keyring_backend() -> None:
    previous = keyring.core._keyring_backend
    keyring.set_keyring(MemoryKeyring())
    try:
        assert open_store(Settings()).kind == "keyring"
    finally:
        keyring.core._keyring_backend = previous


def test_a_configured_keyring_backend_wins_even_an_unusable_one(
    no_keyring_backend: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setattr("exls_core.session.selection.shares_host_keyring", lambda: True)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    assert open_store(Settings()).kind == "keyring"
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND")
    config = tmp_path / "config" / "python_keyring" / "keyringrc.cfg"
    config.parent.mkdir(parents=True)
    config.write_text("[backend]\ndefault-keyring=keyring.backends.null.Keyring\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert open_store(Settings()).kind == "keyring"


def test_the_switch_chooses_either_store(no_keyring_backend: None, tmp_path: Any) -> None:
    from exls_core.config import load_settings

    assert open_store(Settings(session_store="keyring")).kind == "keyring"
    previous = keyring.core._keyring_backend
    keyring.set_keyring(MemoryKeyring())
    try:
        assert open_store(load_settings({"EXLS_SESSION_STORE": "kernel"})).kind == "kernel"
        config = tmp_path / "config.toml"
        config.write_text('[auth]\nsession_store = "kernel"\ntoken_cache = false\n')
        settings = load_settings({}, config)
        assert (settings.session_store, settings.token_cache) == ("kernel", False)
        assert open_store(settings).kind == "kernel"
    finally:
        keyring.core._keyring_backend = previous


def test_off_linux_auto_is_the_keyring(
    no_keyring_backend: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert open_store(Settings()).kind == "keyring"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"EXLS_SESSION_STORE": "disk"},
            "EXLS_SESSION_STORE: expected auto, keyring, kernel or agent",
        ),
        ({"EXLS_TOKEN_CACHE": "maybe"}, "EXLS_TOKEN_CACHE: expected 1 or 0 (true or false)"),
    ],
)
def test_bad_switch_values_are_usage_errors(environ: dict[str, str], expected: str) -> None:
    from exls_core.config import load_settings
    from exls_core.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    assert caught.value.message.startswith(expected)


def test_the_login_note_says_where_and_for_how_long(monkeypatch: pytest.MonkeyPatch) -> None:
    with open("/proc/sys/kernel/keys/persistent_keyring_expiry") as file:
        expiry = int(file.read())
    note = login_note()
    assert "Linux kernel keyring" in note and "never on disk" in note and "reboot" in note
    if expiry % 86400 == 0:
        days = expiry // 86400
        assert f"{days} day{'s' if days != 1 else ''} without use" in note
    assert KernelSessionStore().login_note() == note
    assert SessionStore().login_note() is None


def test_a_keyring_failing_while_the_store_is_chosen_is_asked_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from exls_core.session import selection
    from exls_core.session.keyring_calls import KeyringFailure

    calls = []

    def hanging() -> Any:
        calls.append(1)
        raise KeyringFailure("the keyring did not answer within 10 s")

    monkeypatch.setattr(selection, "_backend_and_choice", hanging)
    store = open_store(Settings())
    for attempt in (store.load, store.check_usable, store.clear):
        with pytest.raises(StoreError) as caught:
            attempt()
        assert "the keyring did not answer within 10 s" in caught.value.message
    assert store.backend_name() == "unavailable (the keyring did not answer within 10 s)"
    assert calls == [1]  # one wait, not one per call


# --- the commands, in subprocesses (which inherit this test's session keyring and scope)

NEW_LOGIN = """
import sys
from exls_core.session import kernel_keyring as kk
kk.join_new_session_keyring()  # what a later SSH login starts with
sys.argv = ["exls", *sys.argv[1:]]
from exls_core.cli import run
run()
"""


def test_status_token_and_logout_from_new_login_sessions(idp: Any, tmp_path: Any) -> None:
    import json
    import subprocess

    from session_testkit import CLIENT_ID

    env = {k: v for k, v in os.environ.items() if k not in ("DBUS_SESSION_BUS_ADDRESS",)}
    env.update(EXLS_AUTH_ISSUER=idp.issuer, EXLS_AUTH_CLIENT_ID=CLIENT_ID)
    # Chosen: in a container like this machine auto picks the agent and no token cache.
    env.update(EXLS_SESSION_STORE="kernel", EXLS_TOKEN_CACHE="1")
    env.pop("PYTHON_KEYRING_BACKEND", None)
    session = make_session(idp.issuer, access_token="AT-kernel", refresh_token="rt-0")
    KernelSessionStore().save(session)

    def exls(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", NEW_LOGIN, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    status = exls("auth", "status", "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert (data["session_store"], data["keyring_plaintext"]) == ("kernel", False)
    assert data["keyring_backend"].startswith("Linux kernel keyring (persistent keyring of uid")
    token = exls("auth", "token")
    assert (token.returncode, token.stdout, token.stderr) == (0, "AT-kernel\n", "")
    assert "token" in names()  # the read refilled the cache
    assert exls("auth", "token").stdout == "AT-kernel\n"
    logout = exls("logout")
    assert (logout.returncode, logout.stderr) == (0, "Logged out.\n")
    assert idp.revoked and idp.revoked[0][:2] == ("rt-0", "refresh_token")
    assert names() == set()  # every key, the cache too
    gone = exls("auth", "token")
    assert gone.returncode == 1 and gone.stdout == ""
