"""The keyring store: chunking, interruption safety at every write, corruption, failures."""

from __future__ import annotations

import json
import threading
from typing import Any

import keyring
import pytest
from hypothesis import given
from hypothesis import strategies as st
from keyring.backends import fail, null
from keyring.errors import KeyringLocked, PasswordSetError
from session_testkit import WINDOWS_LIMIT, Crash, MemoryKeyring, jwt_like, make_session

from exls_core.errors import UsageError
from exls_core.session import chunks
from exls_core.session.keyring_calls import SERVICE, Keyring
from exls_core.session.model import HotRecord, Session
from exls_core.session.store import POINTER, CorruptedSession, SessionStore, StoreError

ISSUER = "https://idp.example/"


STALLED = "the keyring did not answer within 0.05 s; exls makes no more keyring calls in this run"


def big_session(size: int, **overrides: object) -> Session:
    return make_session(ISSUER, **{"access_token": "a" * size, **overrides})


def realistic_session(access: int = 900, id_token: int = 1300, **overrides: object) -> Session:
    """Auth0-sized tokens: JWT access token ~800-1200 characters, ID token ~1000-1500."""
    tokens = {
        "access_token": jwt_like(access, "at"),
        "id_token": jwt_like(id_token, "id"),
        "refresh_token": jwt_like(120, "rt"),
    }
    values: dict[str, Any] = {"issuer": "https://exalsius.eu.auth0.com/", **tokens, **overrides}
    return make_session(**values)


def hot_view(store: SessionStore) -> HotRecord | Session | None:
    return store.load_hot()


def consistent(found: HotRecord | Session | None, session: Session | None) -> bool:
    """load_hot's answer agrees with the full session (hot record or the session itself)."""
    if session is None:
        return found is None
    return found in (session, HotRecord.of(session))


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
    "replace a session with a hot record": [realistic_session(flow="old")],
    "replace twice, hot records (slot b active)": [
        realistic_session(800, flow="older"),
        realistic_session(1000, 1500, flow="old"),
    ],
}
NEW = {
    "large": big_session(3300, access_token="new" * 1100, flow="device_code"),
    "hot": realistic_session(940, 1450, flow="device_code"),
}
OPERATIONS = [("save", "large"), ("save", "hot"), ("logout", "large")]


@pytest.mark.parametrize("history", SCENARIOS.values(), ids=SCENARIOS.keys())
@pytest.mark.parametrize("how", ["crash", "keyring error"])
@pytest.mark.parametrize(("operation", "new_kind"), OPERATIONS)
def test_interrupted_at_every_write_the_store_holds_old_or_new(
    memory_keyring: MemoryKeyring, history: list[Session], how: str, operation: str, new_kind: str
) -> None:
    for session in history:
        SessionStore().save(session)
    old = history[-1] if history else None
    new = NEW[new_kind]
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
        loaded = store.load()
        assert loaded in (old, expected), f"mixed state after write {n}"
        # The auth token path (one read when the pointer carries the hot record) agrees.
        assert consistent(hot_view(store), loaded), f"hot record disagrees after write {n}"
        assert all(len(v.encode("utf-16-le")) <= WINDOWS_LIMIT for v in backend.entries.values())
        # Whatever the interruption left behind, the next writes clean it up.
        later = big_session(50, flow="later")
        store.save(later)
        assert store.load() == later
        assert hot_view(store) == HotRecord.of(later)
        assert len(backend.names()) == 1 + len(chunks.split(later.to_json()))
        store.clear()
        assert backend.entries == {}, f"garbage left after write {n}"


# --- the hot record: `exls auth token` in one keyring read


def pointer_of(backend: MemoryKeyring) -> str:
    return backend.entries[(SERVICE, POINTER)]


@pytest.mark.parametrize("access", [600, 800, 900, 990, 1000, 1100, 1200])
@pytest.mark.parametrize("id_token", [1000, 1500])
@pytest.mark.parametrize(
    "issuer",
    ["https://exalsius.eu.auth0.com/", "https://sso.example.com/realms/" + "r" * 60 + "/"],
)
def test_realistic_sessions_fit_and_valid_tokens_cost_one_read(
    memory_keyring: MemoryKeyring, access: int, id_token: int, issuer: str
) -> None:
    session = realistic_session(access, id_token, issuer=issuer, client_id="c" * 32)
    store = SessionStore()
    store.save(session)
    pointer = pointer_of(memory_keyring)
    assert len(pointer) <= chunks.POINTER_MAX
    assert len(pointer.encode("utf-16-le")) <= WINDOWS_LIMIT
    reads = memory_keyring.reads
    found = store.load_hot()
    hot = chunks.Pointer.decode(pointer).hot is not None
    if access <= 990:  # Auth0-sized access tokens get the one-read path, whatever the issuer
        assert hot
    if hot:
        assert found == HotRecord.of(session)
        assert memory_keyring.reads - reads == 1
    else:
        assert access > 990 and found == session
        assert memory_keyring.reads - reads == 1 + len(chunks.split(session.to_json()))
    assert store.load() == session


@given(
    access=st.text(st.characters(max_codepoint=0x10FFFF, exclude_categories=["Cs"]), min_size=1),
    issuer=st.text(min_size=1, max_size=300),
    expires_at=st.floats(allow_nan=False, allow_infinity=False),
)
def test_any_session_gets_a_pointer_within_the_limit(
    access: str, issuer: str, expires_at: float
) -> None:
    backend = MemoryKeyring()
    session = make_session(issuer, access_token=access, expires_at=expires_at)
    store = SessionStore(keyring=Keyring(backend))
    store.save(session)  # the memory backend refuses any entry over the Windows limit
    pointer = backend.entries[(SERVICE, POINTER)]
    assert len(pointer) <= chunks.POINTER_MAX and pointer.isascii()
    assert store.load() == session
    assert consistent(store.load_hot(), session)


def test_every_damaged_character_of_the_pointer_is_detected(
    memory_keyring: MemoryKeyring,
) -> None:
    store = SessionStore()
    store.save(realistic_session(900))
    pointer = pointer_of(memory_keyring)
    assert chunks.Pointer.decode(pointer).hot is not None
    for index, char in enumerate(pointer):
        for replacement in {"x" if char != "x" else "y", "0" if char != "0" else "1"}:
            memory_keyring.entries[(SERVICE, POINTER)] = (
                pointer[:index] + replacement + pointer[index + 1 :]
            )
            with pytest.raises(CorruptedSession):
                store.load_hot()
    memory_keyring.entries[(SERVICE, POINTER)] = pointer[:-1]  # truncated
    with pytest.raises(CorruptedSession):
        store.load_hot()


def test_a_hot_record_that_disagrees_with_the_chunks_is_corruption(
    memory_keyring: MemoryKeyring,
) -> None:
    store = SessionStore()
    session = realistic_session(900)
    store.save(session)
    pointer = chunks.Pointer.decode(pointer_of(memory_keyring))
    assert pointer.hot is not None
    forged = chunks.Pointer(**{**pointer.__dict__, "hot": {**pointer.hot, "exp": 1e12}})
    memory_keyring.entries[(SERVICE, POINTER)] = forged.encode()  # a valid checksum
    with pytest.raises(CorruptedSession):
        store.load()


def test_a_pointer_without_its_checksum_is_refused(memory_keyring: MemoryKeyring) -> None:
    # No released exls wrote pointers without "sum": such a pointer is damaged, not old.
    session = realistic_session(900)
    text = session.to_json()
    pieces = chunks.split(text)
    for index, piece in enumerate(pieces):
        memory_keyring.entries[(SERVICE, chunks.chunk_name("a", index))] = piece
    old = chunks.make_pointer("a", text, pieces)
    unsummed = (
        f'{{"format":1,"slot":"a","gen":"{old.generation}","chunks":{old.chunks},'
        f'"length":{old.length},"sha256":"{old.sha256}"}}'
    )
    store = SessionStore()
    memory_keyring.entries[(SERVICE, POINTER)] = unsummed[:-1] + chunks._sum_suffix(
        chunks._pointer_sum(unsummed)
    )
    assert store.load() == session  # the control: the same pointer with its checksum loads
    memory_keyring.entries[(SERVICE, POINTER)] = unsummed
    with pytest.raises(CorruptedSession):
        store.load()
    with pytest.raises(CorruptedSession):
        store.load_hot()
    # Nor with a hot record.
    data = json.loads(unsummed)
    record = HotRecord.of(session)
    assert record is not None
    data["hot"] = record.to_dict()
    memory_keyring.entries[(SERVICE, POINTER)] = json.dumps(data)
    with pytest.raises(CorruptedSession):
        store.load_hot()


@pytest.mark.parametrize("hot", [{"v": 2, "token": "x"}, ["a", "list"], "text"])
def test_a_hot_record_from_another_exls_version_is_ignored(
    memory_keyring: MemoryKeyring, hot: object
) -> None:
    store = SessionStore()
    session = realistic_session(900)
    store.save(session)
    pointer = chunks.Pointer.decode(pointer_of(memory_keyring))
    fields = {k: v for k, v in pointer.__dict__.items() if k != "hot"}
    encoded = chunks.Pointer(**fields, hot={"placeholder": 1}).encode()
    # Re-encode with an arbitrary "hot" value and a valid checksum (as another exls would).
    body = encoded[: encoded.rindex(',"sum":')] + "}"
    body = body.replace('"hot":{"placeholder":1}', '"hot":' + json.dumps(hot))
    memory_keyring.entries[(SERVICE, POINTER)] = body[:-1] + chunks._sum_suffix(
        chunks._pointer_sum(body)
    )
    assert store.load_hot() == session  # the chunks decide
    assert store.load() == session


def test_the_new_pointer_keeps_the_fields_older_readers_need(
    memory_keyring: MemoryKeyring,
) -> None:
    SessionStore().save(realistic_session(900))
    data = json.loads(pointer_of(memory_keyring))
    assert data["format"] == 1 and data["slot"] == "a" and data["chunks"] == 3
    assert {"gen", "length", "sha256", "hot", "sum"} <= set(data)


class SmallEntries(MemoryKeyring):
    """A backend whose entries are smaller than Windows' (refuses anything over 1100)."""

    def set_password(self, service: str, username: str, password: str) -> None:
        if len(password) > 1100:
            self._write()
            raise PasswordSetError("too large for this backend")
        super().set_password(service, username, password)


def test_a_backend_refusing_the_hot_pointer_gets_the_compact_one() -> None:
    backend = SmallEntries()
    store = SessionStore(keyring=Keyring(backend))
    session = realistic_session(990)
    store.save(session)
    assert chunks.Pointer.decode(backend.entries[(SERVICE, POINTER)]).hot is None
    assert store.load() == session and store.load_hot() == session


def test_hot_record_repr_hides_the_token() -> None:
    record = HotRecord.of(make_session(ISSUER, access_token="SECRET-A"))
    assert record is not None and "SECRET" not in repr(record)


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
    with pytest.raises(StoreError) as caught:
        SessionStore().load()
    assert not memory_keyring.hang.is_set() and memory_keyring.hangs_ran_out == 0  # gave up
    assert caught.value.message == f"Failed to load token: {STALLED}"


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


def test_the_token_path_makes_one_bounded_call(
    memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exls_core.config import Settings
    from exls_core.session import keyring_calls
    from exls_core.session.refresh import get_access_token

    session = realistic_session(900)
    SessionStore().save(session)
    calls: list[object] = []
    real = keyring_calls.bounded

    def counted(fn: Any, limit: float | None = None) -> Any:
        calls.append(fn)
        return real(fn, limit)

    monkeypatch.setattr(keyring_calls, "bounded", counted)
    # The keyring store as named (auto on Linux asks keyring first, in a bounded call of its
    # own) and no token cache (whose refill re-reads the pointer: see test_token_cache.py).
    settings = Settings(
        issuer=session.issuer,
        client_id=session.client_id,
        session_store="keyring",
        token_cache=False,
    )
    assert get_access_token(settings) == session.access_token  # a new store: backend unchosen
    assert len(calls) == 1


def test_a_hanging_backend_choice_is_abandoned_in_bounded_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from exls_core.session import keyring_calls

    release = threading.Event()
    ran_out: list[bool] = []
    monkeypatch.setattr(
        keyring_calls, "_choose_backend", lambda: ran_out.append(not release.wait(30))
    )
    monkeypatch.setenv("EXLS_KEYRING_TIMEOUT", "0.05")
    try:
        with pytest.raises(StoreError) as caught:
            SessionStore().load_hot()
        assert ran_out == []  # it gave up while the choice still hung
    finally:
        release.set()
    assert caught.value.message == f"Failed to load token: {STALLED}"
