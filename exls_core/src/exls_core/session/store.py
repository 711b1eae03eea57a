"""The session in the OS keyring, written so that an interrupted store never mixes sessions.

Layout under the service ``exalsius_cli``:

* ``session.a.0``, ``session.a.1``, ... and ``session.b.0``, ...: two slots, each holding the
  session JSON cut into chunks (see :mod:`exls_core.session.chunks`);
* ``session``: the pointer, naming the slot in use with the chunks' count, length and SHA-256,
  and, when it fits, the hot record: access token, expiry and a digest of issuer and client.

A store writes the new chunks into the slot the pointer does not name, then rewrites the
pointer (the single commit write), then empties the old slot. Crashing after any write leaves
either the old pointer (old session intact) or the new one (new session complete). Slots are
filled upwards and emptied downwards, so a slot always holds chunks 0..k: whatever an
interrupted write left behind is found by probing and removed by the next store or logout.

Readers: :meth:`SessionStore.load` reads the pointer and its chunks (and checks that the hot
record matches them); :meth:`SessionStore.load_hot` is the ``exls auth token`` path and reads
only the pointer when it carries a hot record. The hot record is written by the same single
commit write as the rest of the pointer, so it always belongs to the committed session.

The same layout lives in the Linux kernel keyring (:mod:`exls_core.session.kernel_store`).
A store with a :class:`~exls_core.session.token_cache.TokenCache` keeps that cache coherent:
every store and removal drops it first, a committed store puts the new token.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from exls_core.errors import ExlsError
from exls_core.session import chunks
from exls_core.session.keyring_calls import (
    Keyring,
    KeyringDisabled,
    KeyringFailure,
    KeyringTimeout,
    backend_name,
    hint_for,
    is_disabled,
    is_plaintext,
)
from exls_core.session.model import HotRecord, Session

if TYPE_CHECKING:
    from exls_core.config import Settings
    from exls_core.session.token_cache import TokenCache

POINTER = "session"
READ_ATTEMPTS = 3  # a reader racing a store retries when the pointer moved under it
CORRUPTED_HINT = 'Run "exls logout", then "exls login".'


class StoreError(ExlsError):
    """The keyring failed; the message starts with Failed to load/store/remove token."""


class CorruptedSession(StoreError):
    """The stored entries do not form a complete session (logout removes them)."""


def _stderr_warning(text: str) -> None:
    print(f"Warning: {text}", file=sys.stderr, flush=True)


_warned_plaintext = False


def _hot_record(pointer: chunks.Pointer) -> HotRecord | None:
    """The pointer's hot record; None when it has none or one this exls cannot read."""
    if pointer.hot is None:
        return None
    try:
        return HotRecord.from_dict(pointer.hot)
    except ValueError:
        return None  # from another exls version: the chunks decide


class SessionStore:
    kind = "keyring"  # what `exls auth status --json` calls it (session_store)
    # False for a store that renews and revokes the session itself and never hands out its
    # refresh token (the exls agent): refresh and logout then call renewed() and end().
    holds_refresh_token = True
    label = "keyring"  # the row naming it in `exls auth status`

    def __init__(
        self,
        keyring: Keyring | None = None,
        warn: Callable[[str], None] = _stderr_warning,
        cache: TokenCache | None = None,
    ) -> None:
        self.keyring = keyring or Keyring()
        self._warn = warn
        self.cache = cache
        self._pointer_read: str | None = None  # as the last load found it (see remember_token)

    def backend_name(self) -> str:
        try:
            return backend_name(self.keyring.backend)
        except KeyringFailure as exc:
            return f"unavailable ({exc.cause})"

    def login_note(self) -> str | None:
        """What to tell people at login about where their session lives (None: nothing)."""
        return None

    def facts(self) -> dict[str, object]:
        """More for ``exls auth status`` about where the session lives (the agent's pid)."""
        return {}

    def refreshable(self, session: Session) -> bool:
        return bool(session.refresh_token) or session.is_workload  # a workload's flow trades again

    def renewed(self, settings: Settings, rejected: str | None = None) -> Session:
        """The session renewed by the store itself (only when not holds_refresh_token);
        rejected: an API refused this access token, so renew it even if it looks valid
        (unless the store holds another one already)."""
        raise NotImplementedError

    def end(self, settings: Settings) -> tuple[bool, str | None]:
        """Logout by the store itself: (whether a session existed, the revocation problem)."""
        raise NotImplementedError

    def is_plaintext(self) -> bool:
        try:
            return is_plaintext(self.keyring.backend)
        except KeyringFailure:
            return False

    # --- load

    def load(self) -> Session | None:
        """The stored session, None when there is none; StoreError when unreadable."""
        try:
            return self._load()
        except KeyringFailure as exc:
            raise StoreError(f"Failed to load token: {exc.cause}", hint=hint_for(exc)) from None

    def load_hot(self) -> HotRecord | Session | None:
        """What ``exls auth token`` needs: the pointer's hot record (one keyring read) when
        there is one, else the full session as :meth:`load` reads it; None when logged out."""
        try:
            raw = self.keyring.get(POINTER)
            if raw is None:
                return None
            self._pointer_read = raw
            try:
                hot = _hot_record(chunks.Pointer.decode(raw))
            except ValueError:
                hot = None  # the full read tells a racing commit from corruption
            return hot if hot is not None else self._load(raw)
        except KeyringFailure as exc:
            raise StoreError(f"Failed to load token: {exc.cause}", hint=hint_for(exc)) from None

    def _load(self, raw: str | None = None) -> Session | None:
        """raw: the pointer as just read, if the caller has it (saves reading it again)."""
        for _ in range(READ_ATTEMPTS):
            if raw is None:
                raw = self.keyring.get(POINTER)
                if raw is None:
                    return None
            try:
                pointer = chunks.Pointer.decode(raw)
                text = chunks.join(pointer, self._read_slot(pointer))
                session = Session.from_json(text)
                hot = _hot_record(pointer)
                if hot is not None and hot != HotRecord.of(session):
                    raise chunks.ChunkError("the hot record does not match the session")
                self._pointer_read = raw
                return session
            except ValueError:
                again = self.keyring.get(POINTER)
                if again == raw:
                    break  # nobody committed meanwhile: this is what is stored
                if again is None:
                    return None  # logged out meanwhile
                raw = again
        raise CorruptedSession(
            "Failed to load token: stored session is corrupted", hint=CORRUPTED_HINT
        )

    def _read_slot(self, pointer: chunks.Pointer) -> list[str | None]:
        pieces: list[str | None] = []
        for index in range(pointer.chunks):
            piece = self.keyring.get(chunks.chunk_name(pointer.slot, index))
            pieces.append(piece)
            if piece is None:
                break
        return pieces

    # --- store

    def check_usable(self) -> None:
        """Before a login: fail now, not after the user has signed in, when the keyring
        cannot hold a session (no backend, disabled, locked, not answering)."""
        try:
            self._check_backend()
            self.keyring.get(POINTER)
        except KeyringFailure as exc:
            raise StoreError(f"Failed to store token: {exc.cause}", hint=hint_for(exc)) from None

    def save(self, session: Session) -> None:
        """Replace the stored session. Callers hold the session lock (one writer at a time)."""
        try:
            self._check_backend()
            if self.cache is not None:
                self.cache.drop()  # a crash from here on leaves no stale token cached
            self._save(session)
            self._cache_committed(session)
        except KeyringFailure as exc:
            raise StoreError(f"Failed to store token: {exc.cause}", hint=hint_for(exc)) from None
        except chunks.ChunkError as exc:
            raise StoreError(f"Failed to store token: {exc}") from None

    # --- the token cache

    def _cache_committed(self, session: Session) -> None:
        if self.cache is None:
            return
        try:
            pointer = self.keyring.get(POINTER)  # the commit just written: its generation
        except KeyringFailure:
            return  # stored all the same; the next read fills the cache
        if pointer is not None:
            self.cache.put_found(session, pointer)

    def remember_token(self, found: HotRecord | Session) -> None:
        """Cache the valid token a load just found, unless the store changed meanwhile: a
        logout or login racing this read must not be undone by a stale token."""
        if self.cache is None or not self.cache.enabled or self._pointer_read is None:
            return
        read = self._pointer_read
        self.cache.put_found(found, read)
        try:
            unchanged = self.keyring.get(POINTER) == read
        except KeyringFailure:
            unchanged = False
        if not unchanged:
            self.cache.drop()

    def _check_backend(self) -> None:
        global _warned_plaintext
        keyring_backend = self.keyring.backend
        if is_disabled(keyring_backend):
            raise KeyringDisabled("the keyring is disabled (keyring.backends.null)")
        if is_plaintext(keyring_backend) and not _warned_plaintext:
            _warned_plaintext = True
            self._warn(
                f"the keyring backend {backend_name(keyring_backend)} stores your tokens "
                "unencrypted on disk."
            )

    def _save(self, session: Session) -> None:
        text = session.to_json()
        pieces = chunks.split(text)
        old = self._current_slot()
        target = chunks.other_slot(old) if old else chunks.SLOTS[0]
        self._empty_slot(target)  # leftovers of an interrupted store or logout
        for index, piece in enumerate(pieces):
            self.keyring.set(chunks.chunk_name(target, index), piece)
        hot = HotRecord.of(session)
        pointer = chunks.make_pointer(target, text, pieces, hot.to_dict() if hot else None)
        try:
            self.keyring.set(POINTER, pointer.encode())
        except KeyringTimeout:
            raise  # it may still land: a second pointer write would race it
        except KeyringFailure:
            if pointer.hot is None:
                raise
            # A backend with a smaller entry limit than Windows': commit without the hot record.
            self.keyring.set(POINTER, pointer.without_hot().encode())
        with contextlib.suppress(KeyringFailure):  # committed: a later write cleans up
            self._empty_slot(chunks.other_slot(target))

    def _current_slot(self) -> str | None:
        raw = self.keyring.get(POINTER)
        try:
            return chunks.Pointer.decode(raw).slot if raw is not None else None
        except chunks.ChunkError:
            return None  # unreadable pointer: both slots are fair game

    def _empty_slot(self, slot: str) -> None:
        count = 0
        while (
            count < chunks.MAX_CHUNKS
            and self.keyring.get(chunks.chunk_name(slot, count)) is not None
        ):
            count += 1
        for index in reversed(range(count)):  # top down keeps the slot a prefix 0..k
            self.keyring.delete(chunks.chunk_name(slot, index))

    # --- remove

    def clear(self) -> bool:
        """Remove every entry (pointer first, then both slots); True when a session existed."""
        try:
            if self.cache is not None:
                self.cache.drop()
            existed = self.keyring.get(POINTER) is not None
            if existed:
                self.keyring.delete(POINTER)
            for slot in chunks.SLOTS:
                self._empty_slot(slot)
            if self.cache is not None:
                self.cache.drop()  # and whatever a reader racing this logout put back
            return existed
        except KeyringFailure as exc:
            raise StoreError(f"Failed to remove token: {exc.cause}", hint=hint_for(exc)) from None
