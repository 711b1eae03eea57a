"""Kernel keyring helpers for tests: what a test's scope left in the persistent keyring.

Every test runs in a fresh anonymous session keyring with its own EXLS_KERNEL_KEY_SCOPE (see
tests/conftest.py), so tests never see each other's keys, not even in the persistent
keyring every process of this user shares; the scope's keys are removed after the test.
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


def scoped_keys(scope: str | None = None) -> dict[str, tuple[int, str]]:
    """name -> (serial, ``type;uid;gid;perm;description``) of the scope's keys in the
    persistent keyring."""
    prefix = scope_prefix(scope)
    found = {}
    for serial in members(kk.persistent_keyring()):
        try:
            described = kk.describe(serial)
        except kk.KernelKeyringError:
            continue  # removed meanwhile
        description = described.split(";", 4)[-1]
        if description.startswith(prefix):
            found[description[len(prefix) :]] = (serial, described)
    return found


def remove_scope(scope: str) -> None:
    for serial, _ in scoped_keys(scope).values():
        kk.invalidate(serial)


def payload(name: str) -> bytes | None:
    key = kk.search(kk.persistent_keyring(), name)
    return kk.read(key) if key is not None else None
