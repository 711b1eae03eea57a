"""Kernel keyring helpers for tests: what a test's scope left in the persistent keyring.

Every test runs in a fresh anonymous session keyring with its own EXLS_KERNEL_KEY_SCOPE (see
tests/conftest.py), so tests never see each other's keys, not even in the persistent
keyring every process of this user shares (each scope has its own gate and exls keyring
there, see exls_core.session.kernel_keyring.store_keyring); the scope's keys and gate are
removed after the test.
"""

from __future__ import annotations

import array
import os

from exls_core.session import kernel_keyring as kk


def scope_prefix(scope: str | None = None) -> str:
    scope = scope if scope is not None else os.environ[kk.SCOPE_ENV]
    return f"{kk.PREFIX}{scope}:"


def members(keyring: int) -> list[int]:
    """The serials linked from a keyring (reading a keyring gives an array of serials)."""
    raw = kk.read(keyring) or b""
    serials = array.array("i")
    serials.frombytes(raw[: len(raw) // serials.itemsize * serials.itemsize])
    return list(serials)


def _store(scope: str | None) -> int | None:
    """The scope's exls keyring (behind its gate in the persistent keyring)."""
    if scope is None:
        return kk.find_store_keyring()
    saved = os.environ.get(kk.SCOPE_ENV)
    os.environ[kk.SCOPE_ENV] = scope
    try:
        return kk.find_store_keyring()
    finally:
        if saved is None:
            del os.environ[kk.SCOPE_ENV]
        else:
            os.environ[kk.SCOPE_ENV] = saved


def scoped_keys(scope: str | None = None) -> dict[str, tuple[int, str]]:
    """name -> (serial, ``type;uid;gid;perm;description``) of the scope's keys in exls's
    keyring."""
    prefix = scope_prefix(scope)
    store = _store(scope)
    found = {}
    for serial in members(store) if store is not None else []:
        try:
            described = kk.describe(serial)
        except kk.KernelKeyringError:
            continue  # removed meanwhile
        description = described.split(";", 4)[-1]
        if description.startswith(prefix):
            found[description[len(prefix) :]] = (serial, described)
    return found


def remove_scope(scope: str) -> None:
    """The scope's keys, then its gate (and so the keyring behind it)."""
    try:
        keys = scoped_keys(scope)
    except kk.ForeignKeyring:
        keys = {}  # a test planted a gate: it goes below
    for serial, _ in keys.values():
        kk.invalidate(serial)
    prefix = scope_prefix(scope)
    for serial in members(kk.persistent_keyring()):
        try:
            if kk.describe(serial).split(";", 4)[-1].startswith(prefix):
                kk.invalidate(serial)
        except kk.KernelKeyringError:
            continue  # removed meanwhile


def payload(name: str) -> bytes | None:
    store = kk.find_store_keyring()
    key = kk.search(store, name) if store is not None else None
    return kk.read(key) if key is not None else None
