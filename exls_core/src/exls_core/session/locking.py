"""One writer at a time: a file lock shared by every exls process of this user.

Refreshing with a rotating refresh token must happen once, not once per process: whoever
holds the lock re-reads the store and finds the token another process already refreshed.
Logins and logouts take the same lock, so they never interleave with a refresh.

One lock for every store, in one place (:func:`exls_core.paths.lock_dir`) whatever the
environment says about runtime or temporary directories: two exls processes of one user
that could reach the same store always take the same lock.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager

from exls_core.errors import ExlsError

LOCK_TIMEOUT = 60.0  # longer than a refresh: HTTP timeout plus a few keyring calls
LOCK_FILE = "session.lock"
PRIVATE_FILE = 0o600


def lock_path() -> str:
    from exls_core.paths import lock_dir

    return str(lock_dir() / LOCK_FILE)


def _make_private(path: str) -> None:
    """An older exls created the lock file with the default mode: narrow it to 0600 (best
    effort: the directory is private anyway)."""
    with contextlib.suppress(OSError):
        info = os.lstat(path)
        if stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) != PRIVATE_FILE:
            os.chmod(path, PRIVATE_FILE)


@contextmanager
def session_lock(timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    from filelock import FileLock, Timeout

    try:
        path = lock_path()
        lock = FileLock(path, timeout=timeout, mode=PRIVATE_FILE)
        lock.acquire()
    except Timeout:
        raise ExlsError(
            f"Another exls process kept the session lock ({path}) for {timeout:g} s; try again."
        ) from None
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        raise ExlsError(f"Cannot take the session lock{where}: {exc.strerror or exc}.") from None
    try:
        _make_private(path)
        yield
    finally:
        lock.release()
