"""Keyring calls that cannot hang exls, with failures mapped to one line for people.

Each call runs in a daemon thread and is abandoned after EXLS_KEYRING_TIMEOUT seconds
(10 by default): a Secret Service that never answers must not freeze ``exls auth token``.
An abandoned call cannot be cancelled and may still complete later (a write may land), so
after a timeout no further call goes to that keyring: a second write could race the first,
and a read could see either. For the system keyring (a :class:`Keyring` made without an
explicit backend, as exls makes them) that holds for the rest of the process.
``keyring`` itself is imported inside the thread too, because choosing a backend can block;
the first call of a :class:`Keyring` chooses the backend in the same thread as its operation
(one thread, one time limit), so ``exls auth token`` makes one bounded call in all.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from exls_core.errors import UsageError

SERVICE = "exalsius_cli"
TIMEOUT_ENV = "EXLS_KEYRING_TIMEOUT"
DEFAULT_TIMEOUT = 10.0

T = TypeVar("T")


class KeyringFailure(Exception):
    """A keyring call failed; ``cause`` is one line for people (never a secret), ``hint``
    what to do when it is more specific than :func:`fix_hint`."""

    def __init__(self, cause: str, hint: str | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.hint = hint


class KeyringDisabled(KeyringFailure):
    """keyring's null backend: it accepts everything and stores nothing."""


DISABLED_HINT = (
    "The keyring is turned off (keyring --disable, or PYTHON_KEYRING_BACKEND="
    "keyring.backends.null.Keyring): remove that setting from keyring's config file or the "
    "environment, or choose a backend that stores secrets."
)


def hint_for(failure: KeyringFailure) -> str:
    """What to do about this failure: its own hint where it has one."""
    if failure.hint:
        return failure.hint
    return DISABLED_HINT if isinstance(failure, KeyringDisabled) else fix_hint()


class KeyringTimeout(KeyringFailure):
    """A call outlived the limit; it still runs and may complete later. Never retry it."""


# Set by a timeout of the system keyring: from then on this process makes no call to it.
_system_stalled: str | None = None


def fix_hint() -> str:
    """What to do about a keyring that is missing, locked or broken, for this platform."""
    if sys.platform == "darwin":
        return "Unlock your login keychain (Keychain Access) and try again."
    if sys.platform == "win32":
        return "Check that Windows Credential Manager is available for your account."
    return (
        "On Linux, start or unlock a Secret Service provider such as GNOME Keyring or KWallet, "
        "choose a keyring backend through PYTHON_KEYRING_BACKEND or keyring's config file, "
        "or keep the session in the kernel keyring (EXLS_SESSION_STORE=kernel), which needs "
        "the keyctl system calls (some containers' seccomp profiles refuse them)."
    )


def timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 3600:  # also rejects nan
        raise UsageError(
            f"{TIMEOUT_ENV}: expected a number of seconds greater than 0, got {raw[:40]!r}."
        )
    return seconds


def _describe(exc: Exception) -> str:
    from keyring import errors

    if isinstance(exc, errors.KeyringLocked):
        return "the keyring is locked"
    if isinstance(exc, errors.NoKeyringError):
        return "no keyring backend is available"
    text = " ".join(str(exc).split())[:200]
    if isinstance(exc, errors.InitError):
        return f"the keyring could not start ({text or type(exc).__name__})"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def bounded(fn: Callable[[], T], limit: float | None = None) -> T:
    """Run fn in a daemon thread; KeyringFailure when it fails, KeyringTimeout when it
    outlives the limit (it then still runs: callers must not touch that keyring again)."""
    limit = timeout() if limit is None else limit
    outcome: list[tuple[bool, Any]] = []

    def target() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:  # handed to the caller's thread below
            outcome.append((False, exc))

    worker = threading.Thread(target=target, name="exls-keyring", daemon=True)
    worker.start()
    worker.join(limit)
    if not outcome:
        raise KeyringTimeout(
            f"the keyring did not answer within {limit:g} s; "
            "exls makes no more keyring calls in this run"
        )
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[no-any-return]
    if not isinstance(value, Exception):
        raise value  # KeyboardInterrupt, SystemExit: not ours to translate
    if isinstance(value, KeyringFailure):
        raise value
    raise KeyringFailure(_describe(value)) from None


def _choose_backend() -> Any:
    import keyring

    return keyring.get_keyring()


def _members(keyring_backend: Any) -> list[Any]:
    # keyring's ChainerBackend delegates to several backends; look at each of them.
    members = getattr(keyring_backend, "backends", None)
    return list(members) if isinstance(members, list | tuple) and members else [keyring_backend]


def backend_name(keyring_backend: Any) -> str:
    """``module.Class``; for keyring's chainer, the backends it chains as well."""

    def name(obj: Any) -> str:
        return f"{type(obj).__module__}.{type(obj).__qualname__}"

    members = _members(keyring_backend)
    if members == [keyring_backend]:
        return name(keyring_backend)
    return f"{name(keyring_backend)} ({', '.join(name(m) for m in members)})"


def is_plaintext(keyring_backend: Any) -> bool:
    """keyrings.alt's PlaintextKeyring and friends, detected without importing keyrings.alt."""
    return any(
        type(b).__module__.startswith("keyrings.alt") and "plaintext" in type(b).__name__.lower()
        for b in _members(keyring_backend)
    )


def is_disabled(keyring_backend: Any) -> bool:
    """keyring's null backend (``keyring --disable``) silently drops whatever it is given."""
    return type(keyring_backend).__module__ == "keyring.backends.null"


class Keyring:
    """Bounded get/set/delete on one keyring backend, under the exalsius_cli service."""

    def __init__(self, keyring_backend: Any | None = None, service: str = SERVICE) -> None:
        self._backend = keyring_backend
        self._system = keyring_backend is None  # the process's keyring, shared by all of exls
        self._stalled: str | None = None
        self.service = service

    @property
    def backend(self) -> Any:
        if self._backend is None:
            return self._call(lambda chosen: chosen)
        return self._backend

    def _call(self, operation: Callable[[Any], T]) -> T:
        """One bounded call; the first one also chooses the backend, in the same thread
        (one thread hand-off instead of two on the ``exls auth token`` path)."""
        global _system_stalled
        stalled = _system_stalled if self._system else self._stalled
        if stalled is not None:
            raise KeyringFailure(stalled)

        def run() -> T:
            if self._backend is None:
                self._backend = _choose_backend()
            return operation(self._backend)

        try:
            return bounded(run)
        except KeyringTimeout as exc:
            if self._system:
                _system_stalled = exc.cause
            else:
                self._stalled = exc.cause
            raise

    def get(self, name: str) -> str | None:
        value = self._call(lambda b: b.get_password(self.service, name))
        if value is not None and not isinstance(value, str):
            raise KeyringFailure(f"the keyring returned a {type(value).__name__}, not text")
        return value

    def set(self, name: str, value: str) -> None:
        self._call(lambda b: b.set_password(self.service, name, value))

    def delete(self, name: str) -> None:
        self._call(lambda b: b.delete_password(self.service, name))
