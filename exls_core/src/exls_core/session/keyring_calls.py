"""Keyring calls that cannot hang exls, with failures mapped to one line for people.

Each call runs in a daemon thread and is abandoned after EXLS_KEYRING_TIMEOUT seconds
(10 by default): a Secret Service that never answers must not freeze ``exls auth token``.
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
    """Run fn in a daemon thread; KeyringFailure when it fails or outlives the limit."""
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
        raise KeyringFailure(f"the keyring did not answer within {limit:g} s")
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


def backend() -> Any:
    """The active keyring backend (choosing it may block, hence bounded)."""
    return bounded(_choose_backend)


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
        self.service = service

    @property
    def backend(self) -> Any:
        if self._backend is None:
            self._backend = backend()
        return self._backend

    def _call(self, operation: Callable[[Any], T]) -> T:
        """One bounded call; the first one also chooses the backend, in the same thread
        (one thread hand-off instead of two on the ``exls auth token`` path)."""

        def run() -> T:
            if self._backend is None:
                self._backend = _choose_backend()
            return operation(self._backend)

        return bounded(run)

    def get(self, name: str) -> str | None:
        value = self._call(lambda b: b.get_password(self.service, name))
        if value is not None and not isinstance(value, str):
            raise KeyringFailure(f"the keyring returned a {type(value).__name__}, not text")
        return value

    def set(self, name: str, value: str) -> None:
        self._call(lambda b: b.set_password(self.service, name, value))

    def delete(self, name: str) -> None:
        self._call(lambda b: b.delete_password(self.service, name))
