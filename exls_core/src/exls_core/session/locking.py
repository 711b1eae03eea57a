"""One writer at a time: a file lock shared by every exls process of this user.

Refreshing with a rotating refresh token must happen once, not once per process: whoever
holds the lock re-reads the store and finds the token another process already refreshed.
Logins and logouts take the same lock, so they never interleave with a refresh.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from exls_core.errors import ExlsError

LOCK_TIMEOUT = 60.0  # longer than a refresh: HTTP timeout plus a few keyring calls


@contextmanager
def session_lock(timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    from filelock import FileLock, Timeout

    from exls_core.paths import lock_dir

    path = lock_dir() / "session.lock"
    lock = FileLock(str(path), timeout=timeout)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except Timeout:
        raise ExlsError(
            f"Another exls process kept the session lock ({path}) for {timeout:g} s; try again."
        ) from None
    except OSError as exc:
        raise ExlsError(f"Cannot take the session lock {path}: {exc.strerror or exc}.") from None
    try:
        yield
    finally:
        lock.release()
