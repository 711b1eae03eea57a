"""Plays a local attacker against exls's kernel keys; run as another uid or user namespace.

    setpriv --reuid=65534 --regid=65534 --clear-groups python tests/keyring_attacker.py NAME...
    unshare -r python tests/keyring_attacker.py NAME...

Tries every way in it has: request_key(2) for each exls key description (EXLS_KERNEL_KEY_SCOPE
as exls would name it) through its own keyrings, every key reachable from its thread,
process, session and user keyrings (descending into each keyring it may read), and every key
listed in /proc/keys (by serial, without possession), reading each and replacing each payload.
Prints JSON: {"read": {description: payload}, "replaced": [description], "tried": n}.

It touches only keys of its own scope (EXLS_KERNEL_KEY_SCOPE): the persistent keyring of the
uid running the suite holds other tests' keys too.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

from exls_core.session import kernel_keyring as kk

_UPDATE = 2
EVIL = b"attacker's payload"


def _reachable() -> set[int]:
    found: set[int] = set()
    todo = []
    for special in (-1, -2, kk.SESSION_KEYRING, kk.USER_KEYRING):
        try:
            todo.append(kk._keyctl("get id", kk._GET_KEYRING_ID, kk._serial(special), 0))
        except kk.KernelKeyringError:
            continue
    while todo:
        serial = todo.pop()
        if serial in found:
            continue
        found.add(serial)
        try:
            if kk.describe(serial).startswith("keyring;"):
                raw = kk.read(serial) or b""
                todo += [
                    int.from_bytes(raw[i : i + 4], sys.byteorder) for i in range(0, len(raw), 4)
                ]
        except kk.KernelKeyringError:
            continue
    return found


def _listed() -> set[int]:
    with open("/proc/keys") as file:
        return {int(line.split()[0], 16) for line in file if kk.description("") in line}


def _requested(names: list[str]) -> set[int]:
    found = set()
    for name in names:
        try:
            found.add(
                kk._syscall(
                    "request_key",
                    kk._REQUEST_KEY,
                    b"user",
                    kk.description(name).encode(),
                    ctypes.c_char_p(None),
                    kk._serial(0),
                )
            )
        except kk.KernelKeyringError:
            continue
    return found


def main(names: list[str]) -> None:
    if not os.environ.get(kk.SCOPE_ENV):
        sys.exit("keyring_attacker.py runs in a test's key scope only")
    serials = _reachable() | _listed() | _requested(names)
    read: dict[str, str] = {}
    replaced: list[str] = []
    for serial in sorted(serials):
        try:
            described = kk.describe(serial)
        except kk.KernelKeyringError:
            described = f"?;?;?;?;serial {serial}"
        label = described.split(";", 4)[-1]
        if not described.startswith("user;") or not label.startswith(kk.description("")):
            continue
        try:
            payload = kk.read(serial)
        except kk.KernelKeyringError:
            payload = None
        if payload is not None:
            read[label] = payload.decode("utf-8", "replace")
        try:
            kk._keyctl("update", _UPDATE, kk._serial(serial), EVIL, ctypes.c_size_t(len(EVIL)))
            replaced.append(label)
        except kk.KernelKeyringError:
            pass
    print(json.dumps({"read": read, "replaced": replaced, "tried": len(serials)}))


if __name__ == "__main__":
    main(sys.argv[1:])
