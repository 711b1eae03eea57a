"""exls's small JSON files: private directories, safe writes, and one cache with a TTL.

Used by discovery, the JWKS, SSO routes, the entry-point index and the remembered email.
What is cached decides what exls trusts (the plugin index decides what gets imported), so:

* exls's directories are 0700 and its files 0600;
* a directory that belongs to another user is refused with one line naming it; one of exls's
  own directories that has become readable or writable by others is made private again,
  and when others could write to it, the cached files in it are dropped (with a warning);
* a write goes to a fresh ``tempfile.mkstemp`` file in the target directory, then
  ``os.replace``: nothing is opened through a symlink planted at the target or beside it;
* a read opens with ``O_NOFOLLOW``: a symlink at the target is a cache miss, never followed.

A cache entry is ``{"key": ..., "stored_at": ..., "answer": ...}``: it answers only for the
same key and while ``0 <= age < ttl`` (an entry from the future is not trusted either).

Standard library only, imported cheaply: the entry-point index is on the start-up path.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import zlib
from collections.abc import Callable
from typing import Any

from exls_core.errors import ExlsError

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_checked: set[str] = set()  # directories already vetted by this process


class UnsafeDirectory(ExlsError):
    """A directory exls would keep its files in is not private to this user."""


def _own_roots() -> tuple[str, ...]:
    """The directories exls creates for itself; only these are repaired rather than refused."""
    from exls_core.paths import runtime_dir, user_dir

    roots = [user_dir("cache"), user_dir("state")]
    if (runtime := runtime_dir()) is not None:
        roots.append(runtime)
    return tuple(os.path.abspath(root) for root in roots)


def _is_own(path: str) -> bool:
    path = os.path.abspath(path)
    return any(path == root or path.startswith(root + os.sep) for root in _own_roots())


def private_dir(path: str | os.PathLike[str]) -> str:
    """``path`` as a directory private to this user: created 0700, or vetted (see above).

    Raises UnsafeDirectory when it belongs to someone else, or when it is open to others and
    not one of exls's own directories.
    """
    path = os.fspath(path)
    if path in _checked:
        return path
    try:
        os.makedirs(path, mode=PRIVATE_DIR)
    except FileExistsError:
        _vet(path)
    _checked.add(path)
    return path


def _vet(path: str) -> None:
    if not hasattr(os, "getuid"):  # Windows: the profile directory's ACL keeps others out
        return
    info = os.stat(path)
    uid = os.getuid()
    if info.st_uid != uid:
        raise UnsafeDirectory(
            f"Refusing to use {path}: it belongs to another user (uid {info.st_uid}); "
            "remove it, or point XDG_CACHE_HOME / XDG_STATE_HOME elsewhere."
        )
    loose = info.st_mode & 0o077
    if not loose:
        return
    if not _is_own(path):
        raise UnsafeDirectory(
            f"Refusing to use {path}: others can access it (mode {info.st_mode & 0o777:o}); "
            f"run chmod 700 {path}."
        )
    os.chmod(path, PRIVATE_DIR)
    if loose & 0o022:  # someone else could have planted files: forget what is cached there
        for name in os.listdir(path):
            if name.endswith(".json"):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(path, name))
        _warn(
            f"{path} was writable by other users; exls made it private (700) "
            "and dropped the files cached there."
        )


def _warn(text: str) -> None:
    if sys.stderr is not None:
        sys.stderr.write(f"Warning: {text}\n")
        sys.stderr.flush()


def read_json(path: str | os.PathLike[str]) -> Any:
    """The JSON in ``path``; OSError or ValueError when missing, a symlink, or not JSON."""
    path = os.fspath(path)
    private_dir(os.path.dirname(path) or ".")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, encoding="utf-8") as file:
        return json.load(file)


def write_json(path: str | os.PathLike[str], data: object) -> None:
    """Write ``data`` to ``path`` (0600, atomically, never through a symlink). Best effort:
    a read-only or full disk only costs a refetch or a forgotten default, so OSError and
    unserializable data are ignored. UnsafeDirectory is not: the user must hear of it."""
    import tempfile  # only when writing: not on the start-up path of a warm cache

    path = os.fspath(path)
    tmp = None
    try:
        directory = private_dir(os.path.dirname(path) or ".")
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(data, file)
        os.replace(tmp, path)  # replaces a symlink at path; never writes through it
        tmp = None
    except (OSError, TypeError, ValueError):
        pass
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.remove(tmp)


# --- the cache ---------------------------------------------------------------------------------


def entry_path(kind: str, key: object, directory: str | os.PathLike[str] | None = None) -> str:
    """Where the entry for ``key`` lives: ``<kind>-<crc32 of key>.json`` in the cache directory.

    (crc32, not a cryptographic hash: it only names a file whose key is checked on reading.)
    """
    if directory is None:
        from exls_core.paths import user_dir

        directory = user_dir("cache")
    digest = zlib.crc32(json.dumps(key).encode())
    return os.path.join(os.fspath(directory), f"{kind}-{digest:08x}.json")


def load(
    path: str | os.PathLike[str],
    key: object,
    *,
    ttl: float | None,
    clock: Callable[[], float] = time.time,
) -> Any:
    """The cached answer for ``key``, or None when there is none, it is stale or damaged.

    ``ttl=None``: valid until the key changes (the entry-point index keys on mtimes).
    """
    try:
        entry = read_json(path)
        if entry["key"] != json.loads(json.dumps(key)):  # compare as JSON (tuples are lists)
            return None
        if ttl is not None and not 0 <= clock() - float(entry["stored_at"]) < ttl:
            return None
        return entry["answer"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store(
    path: str | os.PathLike[str],
    key: object,
    answer: object,
    *,
    clock: Callable[[], float] = time.time,
) -> None:
    """Cache ``answer`` (not None) for ``key``; best effort, as :func:`write_json`."""
    write_json(path, {"key": key, "stored_at": clock(), "answer": answer})
