"""The keyring store: chunking, interruption safety at every write, corruption, failures."""

from __future__ import annotations

import threading
import time

import keyring
import pytest
from hypothesis import given
from hypothesis import strategies as st
from keyring.backends import fail, null
from keyring.errors import KeyringLocked, PasswordSetError
from session_testkit import WINDOWS_LIMIT, Crash, MemoryKeyring, make_session

from exls_core.errors import UsageError
from exls_core.session import chunks
from exls_core.session.keyring_calls import SERVICE
from exls_core.session.model import Session
from exls_core.session.store import CorruptedSession, SessionStore, StoreError

ISSUER = "https://idp.example/"


def big_session(size: int, **overrides: object) -> Session:
    return make_session(ISSUER, **{"access_token": "a" * size, **overrides})


# --- chunks


@pytest.mark.parametrize(
    "length", [1, 999, 1000, 1001, 1999, 2000, 2001, chunks.CHUNK_SIZE * chunks.MAX_CHUNKS]
)
def test_chunks_round_trip_around_the_size_limit(length: int) -> None:
    text = "".join(chr(33 + i % 90) for i in range(length))
    pieces = chunks.split(text)
    assert len(pieces) == -(-length // chunks.CHUNK_SIZE)
    assert all(len(p.encode("utf-16-le")) <= WINDOWS_LIMIT for p in pieces)
    pointer = chunks.make_pointer("a", text, pieces)
    assert chunks.join(pointer, list(pieces)) == text


def test_too_large_or_non_ascii_values_are_refused() -> None:
    with pytest.raises(chunks.ChunkError, match="too large"):
        chunks.split("x" * (chunks.CHUNK_SIZE * chunks.MAX_CHUNKS + 1))
    with pytest.raises(chunks.ChunkError, match="ASCII"):
        chunks.split("é")


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=5000))
def test_chunks_round_trip_any_ascii(text: str) -> None:
    pieces = chunks.split(text, size=97)
    assert chunks.join(chunks.make_pointer("b", text, pieces), list(pieces)) == text


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p[:-1],  # a chunk lost
        lambda p: [p[0][:-1], *p[1:]],  # a truncated chunk
        lambda p: [p[0][:-1] + "?", *p[1:]],  # an altered chunk, same length
        lambda p: [*p[:-1], None],  # a missing chunk
        lambda p: [p[1], p[0], *p[2:]],  # chunks swapped
    ],
)
def test_torn_chunks_are_detected(damage: object) -> None:
    text = "x" * 1500 + "y" * 1500
    pieces = chunks.split(text)
    pointer = chunks.make_pointer("a", text, pieces)
    with pytest.raises(chunks.ChunkError):
        chunks.join(pointer, damage(list(pieces)))  # type: ignore[operator]


# --- store basics


def test_round_trip_of_a_large_session_fits_windows_entries(memory_keyring: MemoryKeyring) -> None:
    session = big_session(7000, id_token="i" * 3000)
    store = SessionStore()
    store.save(session)
    assert store.load() == session
    # every entry passed the 2560-byte check of the memory backend; the pointer is small too
    assert len(memory_keyring.names()) == 1 + -(-len(session.to_json()) // chunks.CHUNK_SIZE)
    assert all(s == SERVICE for s, _ in memory_keyring.entries)


def test_empty_keyring_means_not_logged_in(memory_keyring: MemoryKeyring) -> None:
    assert SessionStore().load() is None


def test_replacing_a_session_leaves_only_the_new_entries(memory_keyring: MemoryKeyring) -> None:
    store = SessionStore()
    store.save(big_session(5000))
    small = big_session(10)
    store.save(small)
    assert store.load() == small
    assert len(memory_keyring.names()) == 1 + len(chunks.split(small.to_json()))
    assert store.clear() is True
    assert memory_keyring.entries == {}
    assert store.clear() is False


def test_no_token_in_the_session_repr() -> None:
    session = make_session(ISSUER, access_token="SECRET-A", refresh_token="SECRET-R")
    assert "SECRET" not in repr(session) and "SECRET" not in str(session)


# --- interruption at every write


def write_count(initial: MemoryKeyring, operation: str, session: Session) -> int:
    probe = initial.clone()
    keyring.set_keyring(probe)
    store = SessionStore()
    store.save(session) if operation == "save" else store.clear()
    return probe.writes


SCENARIOS = {
    "first login": [],
    "replace a session": [big_session(2500, access_token="old" * 800)],
    "replace twice (slot b active)": [big_session(100), big_session(4000)],
}


@pytest.mark.parametrize("history", SCENARIOS.values(), ids=SCENARIOS.keys())
@pytest.mark.parametrize("how", ["crash", "keyring error"])
@pytest.mark.parametrize("operation", ["save", "logout"])
def test_interrupted_at_every_write_the_store_holds_old_or_new(
    memory_keyring: MemoryKeyring, history: list[Session], how: str, operation: str
) -> None:
    for session in history:
        SessionStore().save(session)
    old = history[-1] if history else None
    new = big_session(3300, access_token="new" * 1100, flow="device_code")
    total = write_count(memory_keyring, operation, new)
    assert total >= (1 if history or operation == "save" else 0)
    for n in range(1, total + 2):  # n = total + 1: nothing fails
        backend = memory_keyring.clone()
        keyring.set_keyring(backend)
        backend.fail_on_write = n
        if how == "crash":
            backend.write_error = Crash
        store = SessionStore()
        expected = new if operation == "save" else None
        try:
            store.save(new) if operation == "save" else store.clear()
        except (Crash, StoreError):
            assert n <= total
        backend.fail_on_write = None
        assert store.load() in (old, expected), f"mixed state after write {n}"
        # Whatever the interruption left behind, the next writes clean it up.
        later = big_session(50, flow="later")
        store.save(later)
        assert store.load() == later
        assert len(backend.names()) == 1 + len(chunks.split(later.to_json()))
        store.clear()
        assert backend.entries == {}, f"garbage left after write {n}"


def test_a_failed_store_reports_and_keeps_the_old_session(memory_keyring: MemoryKeyring) -> None:
    old = big_session(100)
    SessionStore().save(old)
    memory_keyring.fail_on_write = memory_keyring.writes + 2
    with pytest.raises(StoreError) as caught:
        SessionStore().save(big_session(3000))
    assert caught.value.message == "Failed to store token: PasswordSetError: injected"
    assert "Secret Service" in (caught.value.hint or "")
    memory_keyring.fail_on_write = None
    assert SessionStore().load() == old


# --- readers


def test_a_reader_racing_a_store_sees_a_complete_session(memory_keyring: MemoryKeyring) -> None:
    old, new = big_session(2500), big_session(2500, access_token="n" * 2500)
    store = SessionStore()
    store.save(old)
    store.save(big_session(10))
    store.save(old)  # old in slot a, slot b empty
    raced = []

    def commit_meanwhile(name: str) -> None:
        if name.endswith(".1") and not raced:  # mid-read of old's chunks
            raced.append(name)
            SessionStore().save(new)  # new into b, pointer flips, a is emptied

    memory_keyring.on_read = commit_meanwhile
    assert store.load() == new
    assert raced


@pytest.mark.parametrize(
    "tamper",
    [
        lambda name, value: value[:-3] if name == "session.a.1" else value,  # truncated
        lambda name, value: None if name == "session.a.0" else value,  # missing
        lambda name, value: "{not json" if name == "session" else value,  # pointer garbage
        lambda name, value: (
            value.replace('"chunks":3', '"chunks":2') if name == "session" else value
        ),
    ],
    ids=["truncated chunk", "missing chunk", "garbage pointer", "wrong chunk count"],
)
def test_corrupted_entries_are_reported_with_the_fix(
    memory_keyring: MemoryKeyring, tamper: object
) -> None:
    SessionStore().save(big_session(2500))
    assert len(memory_keyring.names()) == 4  # pointer + 3 chunks in slot a
    memory_keyring.tamper = tamper  # type: ignore[assignment]
    with pytest.raises(CorruptedSession) as caught:
        SessionStore().load()
    assert caught.value.message == "Failed to load token: stored session is corrupted"
    assert caught.value.hint == 'Run "exls logout", then "exls login".'
    memory_keyring.tamper = None
    assert SessionStore().clear() is True
    assert memory_keyring.entries == {}


def test_checksummed_chunks_that_are_not_a_session_are_corruption(
    memory_keyring: MemoryKeyring,
) -> None:
    text = '{"format": 1, "issuer": 3}'
    pointer = chunks.make_pointer("a", text, [text])
    memory_keyring.entries[(SERVICE, "session.a.0")] = text
    memory_keyring.entries[(SERVICE, "session")] = pointer.encode()
    with pytest.raises(CorruptedSession):
        SessionStore().load()


# --- failing keyrings


def test_no_backend_maps_to_load_and_store_errors() -> None:
    previous = keyring.core._keyring_backend
    keyring.set_keyring(fail.Keyring())
    try:
        with pytest.raises(StoreError, match=r"^Failed to load token: no keyring backend"):
            SessionStore().load()
        with pytest.raises(StoreError, match=r"^Failed to store token: no keyring backend"):
            SessionStore().save(big_session(10))
    finally:
        keyring.core._keyring_backend = previous


def test_locked_keyring(memory_keyring: MemoryKeyring) -> None:
    memory_keyring.read_error = lambda: KeyringLocked("Failed to unlock the collection!")
    with pytest.raises(StoreError) as caught:
        SessionStore().load()
    assert caught.value.message == "Failed to load token: the keyring is locked"
    assert "GNOME Keyring or KWallet" in (caught.value.hint or "")
    assert "PYTHON_KEYRING_BACKEND" in (caught.value.hint or "")


def test_failing_reads_and_writes_name_the_cause(memory_keyring: MemoryKeyring) -> None:
    memory_keyring.read_error = lambda: RuntimeError("D-Bus went away")
    with pytest.raises(StoreError) as caught:
        SessionStore().load()
    assert caught.value.message == "Failed to load token: RuntimeError: D-Bus went away"
    memory_keyring.read_error = None
    memory_keyring.fail_on_write = 1
    memory_keyring.write_error = lambda: PasswordSetError("Can't store password on keychain")
    with pytest.raises(StoreError, match=r"^Failed to store token: PasswordSetError: Can't store"):
        SessionStore().save(big_session(10))
    assert memory_keyring.entries == {}


def test_a_hanging_keyring_is_abandoned_in_bounded_time(
    memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXLS_KEYRING_TIMEOUT", "0.05")
    memory_keyring.hang = threading.Event()
    started = time.monotonic()
    with pytest.raises(StoreError) as caught:
        SessionStore().load()
    assert time.monotonic() - started < 2
    assert caught.value.message == "Failed to load token: the keyring did not answer within 0.05 s"


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan"])
def test_a_bad_keyring_timeout_is_a_usage_error(
    memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("EXLS_KEYRING_TIMEOUT", value)
    with pytest.raises(UsageError, match="EXLS_KEYRING_TIMEOUT: expected a number of seconds"):
        SessionStore().load()


def test_the_null_backend_is_refused_on_store() -> None:
    previous = keyring.core._keyring_backend
    keyring.set_keyring(null.Keyring())
    try:
        with pytest.raises(StoreError, match=r"^Failed to store token: the keyring is disabled"):
            SessionStore().save(big_session(10))
    finally:
        keyring.core._keyring_backend = previous


class PlaintextKeyring(MemoryKeyring):
    pass


PlaintextKeyring.__module__ = "keyrings.alt.file"


def test_a_plaintext_backend_warns_once(memory_keyring: MemoryKeyring) -> None:
    keyring.set_keyring(PlaintextKeyring())
    warnings: list[str] = []
    SessionStore(warn=warnings.append).save(big_session(10))
    SessionStore(warn=warnings.append).save(big_session(20))
    assert warnings == [
        "the keyring backend keyrings.alt.file.PlaintextKeyring stores your tokens "
        "unencrypted on disk."
    ]


def test_an_encrypted_backend_does_not_warn(memory_keyring: MemoryKeyring) -> None:
    warnings: list[str] = []
    SessionStore(warn=warnings.append).save(big_session(10))
    assert warnings == []


class ChainerLike(MemoryKeyring):
    """Shaped like keyring's ChainerBackend: delegates to several backends."""

    def __init__(self, *members: MemoryKeyring) -> None:
        super().__init__()
        self.backends = list(members)


def test_a_chained_plaintext_backend_is_detected_and_named() -> None:
    from exls_core.session.keyring_calls import backend_name, is_plaintext

    chained = ChainerLike(MemoryKeyring(), PlaintextKeyring())
    assert is_plaintext(chained) and not is_plaintext(ChainerLike(MemoryKeyring()))
    assert backend_name(chained) == (
        "test_session_store.ChainerLike "
        "(session_testkit.MemoryKeyring, keyrings.alt.file.PlaintextKeyring)"
    )


def test_a_session_from_a_newer_exls_with_more_fields_still_loads() -> None:
    import json

    session = big_session(10)
    data = json.loads(session.to_json())
    data["added_later"] = "x"
    assert Session.from_json(json.dumps(data)) == session
    del data["subject"]
    with pytest.raises(ValueError):
        Session.from_json(json.dumps(data))


def test_the_session_lock_times_out_with_a_clear_message() -> None:
    import subprocess
    import sys

    from exls_core.errors import ExlsError
    from exls_core.paths import lock_dir
    from exls_core.session.locking import session_lock

    path = lock_dir() / "session.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(ExlsError) as caught, session_lock(timeout=0.05):
            pass
        assert caught.value.message.startswith("Another exls process kept the session lock")
    finally:
        holder.communicate("")
    with session_lock(timeout=5):  # free again
        pass


HOLD = """
import sys
from filelock import FileLock
with FileLock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_session_too_large_for_the_keyring_is_refused(memory_keyring: MemoryKeyring) -> None:
    with pytest.raises(StoreError) as caught:
        SessionStore().save(big_session(chunks.CHUNK_SIZE * chunks.MAX_CHUNKS))
    assert caught.value.message.startswith("Failed to store token: the session is too large (")
    assert memory_keyring.entries == {}
