"""The Linux kernel keyring (``man 7 keyrings``): the few calls exls needs, through ctypes.

glibc has no wrappers for add_key(2) and keyctl(2), so they go through libc's syscall(2) by
number. Keys are of type ``user``, addressed by description. Every failure is a
:class:`KernelKeyringError` carrying a line for people; "no such key" (also expired or
revoked) is an answer, not an error: ``search`` and ``read`` return None.

Who can use exls's keys (see :func:`store_keyring`): the kernel adds a key's possessor
permissions for any process that possesses it, whatever its uid, and a process that changed
uid but kept the session keyring (``sudo -u``, ``su``, ``runuser`` without ``pam_keyinit
force``) possesses whatever is linked there. So exls links the persistent keyring only into
its own process keyring, and keeps its keys behind a gate keyring that only this uid may
search: possessing them takes this uid *and* possession, and the keys themselves give
nothing without possession (a process of this uid in another user namespace, such as
``unshare -r`` or a rootless container, cannot read them by serial).

This module imports only ctypes: ``exls auth token`` reads its cache through it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys

PROCESS_KEYRING = -2  # KEY_SPEC_PROCESS_KEYRING
SESSION_KEYRING = -3  # KEY_SPEC_SESSION_KEYRING
USER_KEYRING = -4  # KEY_SPEC_USER_KEYRING

# Permission bits (man 7 keyrings): possessor << 24, user (this uid) << 16, group << 8, other.
VIEW, READ, WRITE, SEARCH, LINK, SETATTR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
# A key: what possession needs (read, update, time out, remove); nothing without possession.
PRIVATE = (VIEW | READ | WRITE | SEARCH | SETATTR) << 24
# The keyring holding the keys: possessors add and remove keys in it; nobody else anything.
STORE_PERM = (VIEW | WRITE | SEARCH) << 24
# The gate in the persistent keyring: this uid may look into it; possessors may only link it
# (to move it there once); it can never change again (nobody has write or setattr).
GATE_PERM = (LINK << 24) | (VIEW | SEARCH) << 16

SCOPE_ENV = "EXLS_KERNEL_KEY_SCOPE"  # prefixes key descriptions only (tests isolate with it)
PREFIX = "exalsius_cli:"

_GET_KEYRING_ID = 0
_JOIN_SESSION_KEYRING = 1
_SETPERM = 5
_DESCRIBE = 6
_LINK = 8
_SEARCH = 10
_READ = 11
_SET_TIMEOUT = 15
_INVALIDATE = 21
_GET_PERSISTENT = 22
_MOVE = 30
_MOVE_EXCL = 1
GATE = "keys"  # descriptions of the gate and the keyring behind it (after PREFIX and scope)
STORE = "store"

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


def search(keyring: int, name: str, kind: bytes = b"user") -> int | None:
    """The key (of type kind) named name in keyring or a keyring linked from it, that this
    process may search; None when there is none."""
    try:
        return _keyctl(
            "keyctl search",
            _SEARCH,
            _serial(keyring),
            kind,
            description(name).encode(),
            _serial(0),
        )
    except KernelKeyringError as exc:
        if exc.errno in _GONE:
            return None
        raise


def member(keyring: int, name: str) -> int | None:
    """The ``user`` key named name linked directly in keyring (search looks deeper too)."""
    wanted = f"user;{os.getuid()};"
    raw = read(keyring) or b""
    for offset in range(0, len(raw) - 3, 4):
        key = int.from_bytes(raw[offset : offset + 4], sys.byteorder)
        try:
            described = describe(key)
        except KernelKeyringError:
            continue  # removed meanwhile, or not ours to see
        if described.startswith(wanted) and described.split(";", 4)[4] == description(name):
            return key
    return None


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
    """This user's persistent keyring, linked into this process's own keyring (which no other
    process shares, unlike the session keyring), so that this process possesses it; each
    call renews its expiry (``persistent_keyring_expiry``)."""
    return _keyctl(
        "keyctl get_persistent", _GET_PERSISTENT, ctypes.c_long(-1), _serial(PROCESS_KEYRING)
    )


def _owned(key: int, permissions: int) -> bool:
    """Whether key belongs to this uid and has exactly these permissions."""
    _kind, uid, _gid, perm, _rest = describe(key).split(";", 4)
    return int(uid) == os.getuid() and int(perm, 16) == permissions


class ForeignKeyring(KernelKeyringError):
    """A keyring with exls's name that exls did not make (another uid's, or altered)."""


def _new_keyring(name: str, keyring: int) -> int:
    return _syscall(
        "add_key",
        _ADD_KEY,
        b"keyring",
        description(name).encode(),
        None,
        ctypes.c_size_t(0),
        _serial(keyring),
    )


def _move_in(gate: int, persistent: int) -> None:
    """Move the gate from the process keyring into the persistent keyring, unless another
    process put one there first (EEXIST: that one is used)."""
    try:
        _keyctl(
            "keyctl move",
            _MOVE,
            _serial(gate),
            _serial(PROCESS_KEYRING),
            _serial(persistent),
            ctypes.c_uint(_MOVE_EXCL),
        )
    except KernelKeyringError as exc:
        if exc.errno == errno.EEXIST:
            return
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
        # Linux before 5.1 has no KEYCTL_MOVE: link it (a gate made at the same moment by
        # another exls process of this user would be replaced, and its keys lost).
        _keyctl("keyctl link", _LINK, _serial(gate), _serial(persistent))


def find_store_keyring() -> int | None:
    """The keyring holding exls's keys: ``store`` behind the gate ``keys`` in this user's
    persistent keyring, possessed by this process only; None when there is none yet.
    ForeignKeyring when the gate is not one exls made for this uid."""
    gate = search(persistent_keyring(), GATE, b"keyring")
    if gate is None:
        return None
    if not _owned(gate, GATE_PERM):
        raise ForeignKeyring(
            errno.EACCES,
            f"the keyring {description(GATE)} in the persistent keyring of uid {os.getuid()} "
            f"is not one exls made (owner or permissions: {describe(gate)}); remove it with: "
            f"keyctl unlink {gate} $(keyctl get_persistent @p)",
        )
    return search(gate, STORE, b"keyring")


def store_keyring() -> int:
    """find_store_keyring, made when there is none: built in the process keyring, where no
    other process can reach it, closed (STORE_PERM, GATE_PERM), and only then moved into the
    persistent keyring."""
    for _ in range(2):
        store = find_store_keyring()
        if store is not None:
            return store
        gate = _new_keyring(GATE, PROCESS_KEYRING)
        set_permissions(_new_keyring(STORE, gate), STORE_PERM)
        set_permissions(gate, GATE_PERM)
        _move_in(gate, persistent_keyring())
    raise KernelKeyringError(errno.ENOKEY, "the exls keyring kept disappearing")


def keyring_id(keyring: int) -> int:
    """The serial of a special keyring (SESSION_KEYRING, USER_KEYRING), created if needed."""
    return _keyctl("keyctl get_keyring_id", _GET_KEYRING_ID, _serial(keyring), ctypes.c_long(1))


def join_new_session_keyring() -> int:
    """Give this process (and its children) a fresh anonymous session keyring."""
    return _keyctl("keyctl join", _JOIN_SESSION_KEYRING, ctypes.c_char_p(None))
