"""The Linux kernel keyring (``man 7 keyrings``): the few calls exls needs, through ctypes.

glibc has no wrappers for add_key(2) and keyctl(2), so they go through libc's syscall(2) by
number. Keys are of type ``user``, addressed by description. Every failure is a
:class:`KernelKeyringError` carrying a line for people; "no such key" (also expired or
revoked) is an answer, not an error: ``search`` and ``read`` return None.

This module imports only ctypes: ``exls auth token`` reads its cache through it.
"""

from __future__ import annotations

import ctypes
import errno
import os

SESSION_KEYRING = -3  # KEY_SPEC_SESSION_KEYRING
USER_KEYRING = -4  # KEY_SPEC_USER_KEYRING

# Possessor and user (this uid): view, read, write, search, link, setattr. Group, other: none.
PRIVATE = 0x3F3F0000

SCOPE_ENV = "EXLS_KERNEL_KEY_SCOPE"  # prefixes key descriptions only (tests isolate with it)
PREFIX = "exalsius_cli:"

_GET_KEYRING_ID = 0
_JOIN_SESSION_KEYRING = 1
_SETPERM = 5
_DESCRIBE = 6
_SEARCH = 10
_READ = 11
_SET_TIMEOUT = 15
_INVALIDATE = 21
_GET_PERSISTENT = 22

# The first of add_key, request_key, keyctl (consecutive everywhere) by machine; the
# asm-generic number covers arm64, riscv and loongarch.
_FIRST_NUMBER = {
    "x86_64": 248,
    "aarch64": 217,
    "arm64": 217,
    "riscv64": 217,
    "loongarch64": 217,
    "i386": 286,
    "i686": 286,
    "armv7l": 309,
    "armv6l": 309,
    "armv8l": 309,
    "ppc64le": 269,
    "ppc64": 269,
    "s390x": 278,
}
_ADD_KEY, _REQUEST_KEY, _KEYCTL = 0, 1, 2
_GONE = (errno.ENOKEY, errno.EKEYEXPIRED, errno.EKEYREVOKED)
_REFUSED = (errno.EPERM, errno.ENOSYS, errno.EOPNOTSUPP)
READ_BUFFER = 8192  # one read for every exls key; larger ones take a second


class KernelKeyringError(Exception):
    """A keyring call failed; ``cause`` is one line for people (never a key's contents)."""

    def __init__(self, code: int, cause: str) -> None:
        super().__init__(cause)
        self.errno = code
        self.cause = cause


class KeyringRefused(KernelKeyringError):
    """The kernel refuses keyring calls here (a seccomp profile, a kernel without keys)."""


class QuotaExceeded(KernelKeyringError):
    """This user's kernel key quota (``/proc/sys/kernel/keys/maxbytes``) is used up."""


def error_for(code: int, operation: str) -> KernelKeyringError:
    text = f"{operation}: {os.strerror(code)}"
    if code in _REFUSED:
        return KeyringRefused(code, f"the kernel keyring is not available here ({text})")
    if code == errno.EDQUOT:
        return QuotaExceeded(code, f"the kernel keyring quota of this user is full ({text})")
    return KernelKeyringError(code, f"the kernel keyring failed ({text})")


_libc: ctypes.CDLL | None = None


def _syscall(operation: str, which: int, *args: object) -> int:
    """The system call _ADD_KEY, _REQUEST_KEY or _KEYCTL; error_for(errno) when it fails."""
    global _libc
    machine = os.uname().machine
    if machine not in _FIRST_NUMBER:
        raise KeyringRefused(errno.ENOSYS, f"no keyctl system call number for {machine}")
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)  # the C library this process already has
        _libc.syscall.restype = ctypes.c_long
    number = ctypes.c_long(_FIRST_NUMBER[machine] + which)
    result: int = _libc.syscall(number, *args)
    if result == -1:
        raise error_for(ctypes.get_errno(), operation)
    return result


def _keyctl(operation: str, command: int, *args: object) -> int:
    return _syscall(operation, _KEYCTL, ctypes.c_int(command), *args)


def _serial(value: int) -> ctypes.c_long:
    return ctypes.c_long(value)


def description(name: str) -> str:
    """``exalsius_cli:<name>``, after the test scope when EXLS_KERNEL_KEY_SCOPE is set."""
    scope = os.environ.get(SCOPE_ENV, "")
    return f"{PREFIX}{scope}:{name}" if scope else PREFIX + name


def add(keyring: int, name: str, payload: bytes) -> int:
    """Create the ``user`` key named name in keyring, or replace its payload atomically."""
    return _syscall(
        "add_key",
        _ADD_KEY,
        b"user",
        description(name).encode(),
        payload,
        ctypes.c_size_t(len(payload)),
        _serial(keyring),
    )


def search(keyring: int, name: str) -> int | None:
    """The key named name in keyring (or a keyring linked from it); None when there is none."""
    try:
        return _keyctl(
            "keyctl search",
            _SEARCH,
            _serial(keyring),
            b"user",
            description(name).encode(),
            _serial(0),
        )
    except KernelKeyringError as exc:
        if exc.errno in _GONE:
            return None
        raise


def find(name: str) -> int | None:
    """The key named name in this process's keyrings (session keyring and the keyrings linked
    from it, such as the persistent keyring once linked); None when there is none."""
    try:
        return _syscall(
            "request_key",
            _REQUEST_KEY,
            b"user",
            description(name).encode(),
            ctypes.c_char_p(None),  # no call-out: never ask user space to make the key
            _serial(0),
        )
    except KernelKeyringError as exc:
        if exc.errno in _GONE:
            return None
        raise


def read(key: int) -> bytes | None:
    """A key's payload; None when the key expired or was removed meanwhile."""
    size = READ_BUFFER
    for _ in range(3):  # a concurrent update may grow it between the two reads
        buffer = ctypes.create_string_buffer(size)
        try:
            length = _keyctl("keyctl read", _READ, _serial(key), buffer, ctypes.c_size_t(size))
        except KernelKeyringError as exc:
            if exc.errno in _GONE:
                return None
            raise
        if length <= size:
            return buffer.raw[:length]
        size = length
    raise KernelKeyringError(errno.EAGAIN, "keyctl read: the key kept growing")


def set_permissions(key: int, permissions: int = PRIVATE) -> None:
    _keyctl("keyctl setperm", _SETPERM, _serial(key), ctypes.c_uint32(permissions))


def set_timeout(key: int, seconds: int) -> None:
    """The kernel removes the key after this many seconds (0: never)."""
    _keyctl("keyctl set_timeout", _SET_TIMEOUT, _serial(key), ctypes.c_uint(seconds))


def invalidate(key: int) -> None:
    """Remove the key from every keyring at once (its memory is freed soon after)."""
    try:
        _keyctl("keyctl invalidate", _INVALIDATE, _serial(key))
    except KernelKeyringError as exc:
        if exc.errno not in _GONE:
            raise


def describe(key: int) -> str:
    """``type;uid;gid;perm;description`` (perm in hex), as keyctl rdescribe prints it."""
    buffer = ctypes.create_string_buffer(4096)
    length = _keyctl("keyctl describe", _DESCRIBE, _serial(key), buffer, ctypes.c_size_t(4096))
    return buffer.raw[: max(length - 1, 0)].decode(errors="replace")


def persistent_keyring() -> int:
    """This user's persistent keyring, linked into the session keyring (so its keys are
    possessed); each call renews its expiry (``persistent_keyring_expiry``)."""
    return _keyctl(
        "keyctl get_persistent", _GET_PERSISTENT, ctypes.c_long(-1), _serial(SESSION_KEYRING)
    )


def keyring_id(keyring: int, *, create: bool = True) -> int:
    """The serial of a special keyring (SESSION_KEYRING, USER_KEYRING), created if needed.
    Without ``create``, a process without a session keyring gets the user-session keyring
    (shared by this user's processes) rather than a new one of its own."""
    return _keyctl(
        "keyctl get_keyring_id", _GET_KEYRING_ID, _serial(keyring), ctypes.c_long(int(create))
    )


def join_new_session_keyring() -> int:
    """Give this process (and its children) a fresh anonymous session keyring."""
    return _keyctl("keyctl join", _JOIN_SESSION_KEYRING, ctypes.c_char_p(None))
