"""The session in the Linux kernel keyring, for machines where no Secret Service runs.

The layout and its guarantees are the keyring store's (:mod:`exls_core.session.store`: two
slots of chunks and a pointer that commits them, written so that an interrupted store never
mixes sessions); only the entries live elsewhere: ``user`` keys named ``exalsius_cli:session``,
``exalsius_cli:session.a.0``, ... in exls's keyring in the user's persistent keyring (``man 7
persistent-keyring``; see :func:`kernel_keyring.store_keyring`). That is kernel memory, never
disk, shared by every login of this user (a later SSH login finds the session), and gone
after a reboot or after ``/proc/sys/kernel/keys/persistent_keyring_expiry`` seconds without
use (3 days by default; every exls command that reads the store renews it). Each key is
usable only by a process of this uid that possesses it through its own process keyring, and
all of them count against the user's kernel key quota (``/proc/sys/kernel/keys/maxbytes``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from exls_core.session import kernel_keyring as kk
from exls_core.session.keyring_calls import Keyring, KeyringFailure
from exls_core.session.store import SessionStore

if TYPE_CHECKING:
    from exls_core.session.token_cache import TokenCache

KEYS = "/proc/sys/kernel/keys/"
REFUSED_HINT = (
    "The kernel refuses keyring calls here (as a container's seccomp profile does, Docker's "
    "default among them): run exls where keyctl is allowed, start a Secret Service such as "
    "GNOME Keyring or KWallet, or choose a keyring backend through PYTHON_KEYRING_BACKEND."
)


def _proc_number(name: str) -> int | None:
    try:
        with open(KEYS + name, encoding="ascii") as file:
            return int(file.read().strip())
    except (OSError, ValueError):
        return None


def _used_bytes() -> int | None:
    """This user's key bytes in use, from /proc/key-users (``uid: ... qnbytes/maxbytes``)."""
    try:
        with open("/proc/key-users", encoding="ascii") as file:
            for line in file:
                uid, _, rest = line.partition(":")
                if uid.strip() == str(os.getuid()):
                    return int(rest.split()[-1].split("/")[0])
    except (OSError, ValueError, IndexError):
        pass
    return None


def quota_hint() -> str:
    name = "root_maxbytes" if os.getuid() == 0 else "maxbytes"
    limit, used = _proc_number(name), _used_bytes()
    sizes = f"{limit} bytes" if limit is not None else "a limited number of bytes"
    if used is not None:
        sizes += f", {used} in use now"
    return (
        f"The kernel keeps {sizes} of keys per user ({KEYS}{name}). Remove keys you no "
        "longer need (see keyctl show @u), raise the limit (sysctl kernel.keys.maxbytes), "
        "or use a Secret Service (EXLS_SESSION_STORE=keyring)."
    )


def duration(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def login_note() -> str:
    """Where the session lives and what that means, said once at login."""
    expiry = _proc_number("persistent_keyring_expiry")
    unused = f"{duration(expiry)} without use" if expiry else "the kernel's expiry time unused"
    return (
        "Your session is kept in the Linux kernel keyring: in memory, never on disk, for "
        f"later logins of this user too; it is gone after a reboot or after {unused} "
        "(exls renews it whenever it reads it)."
    )


@contextmanager
def _as_keyring_failure() -> Iterator[None]:
    try:
        yield
    except kk.KeyringRefused as exc:
        raise KeyringFailure(exc.cause, REFUSED_HINT) from None
    except kk.QuotaExceeded as exc:
        raise KeyringFailure(exc.cause, quota_hint()) from None
    except kk.KernelKeyringError as exc:
        raise KeyringFailure(exc.cause) from None


class KernelEntries(Keyring):
    """Named entries as keys in exls's keyring behind its gate in the persistent keyring
    (:func:`kernel_keyring.store_keyring`): what SessionStore needs of a keyring.

    Kernel calls return at once, so they need no thread and no time limit.
    """

    def __init__(self) -> None:
        super().__init__(keyring_backend=self)
        self._keyring: int | None = None

    def _store_keyring(self, *, create: bool) -> int | None:
        """exls's keyring (see kernel_keyring.store_keyring); made first with create."""
        return kk.store_keyring() if create else kk.find_store_keyring()

    def _possess(self) -> None:
        """Possess exls's keyring in this thread: a process keyring lives in the credentials
        of the thread that made it, so the persistent keyring another thread linked there
        gives this one nothing (EACCES on the keys)."""
        kk.persistent_keyring()

    def _ring(self) -> int | None:
        if self._keyring is None:
            self._keyring = self._store_keyring(create=False)
        else:
            self._possess()
        return self._keyring

    def _made_ring(self) -> int:
        ring = self._ring()
        if ring is None:
            ring = self._keyring = self._store_keyring(create=True)
        assert ring is not None
        return ring

    def _find(self, name: str) -> int | None:
        ring = self._ring()
        return kk.search(ring, name) if ring is not None else None

    def get(self, name: str) -> str | None:
        with _as_keyring_failure():
            key = self._find(name)
            value = kk.read(key) if key is not None else None
        # Anything but the ASCII exls writes fails the chunks' checksum, as it should.
        return value.decode("utf-8", "replace") if value is not None else None

    def set(self, name: str, value: str) -> None:
        with _as_keyring_failure():
            key = kk.add(self._made_ring(), name, value.encode("utf-8"))
            kk.set_permissions(key)  # what possession needs; nothing without it

    def delete(self, name: str) -> None:
        with _as_keyring_failure():
            key = self._find(name)
            if key is not None:
                kk.invalidate(key)


class LegacyKernelEntries(KernelEntries):
    """The keys an older exls kept directly in the persistent keyring, usable by any process
    that possesses it (issue 23): found for logout and status, never written."""

    def _find(self, name: str) -> int | None:
        return kk.member(kk.persistent_keyring(), name)

    def _made_ring(self) -> int:
        raise KeyringFailure("exls no longer stores sessions there")


class SandboxEntries(KernelEntries):
    """A sandbox's entries: the kernel store's keyring behind a gate of the sandbox's own
    (``exalsius_cli:sandbox-<digest of its directory>:keys``) in the session keyring (this
    login session's, or the user-session keyring where there is none), never the persistent
    keyring, so that neither the real session nor another sandbox is ever read or written.
    The gate keeps another uid sharing the session keyring out, as it does for the real one."""

    def __init__(self, home: str) -> None:
        import hashlib

        super().__init__()
        digest = hashlib.sha256(os.path.realpath(home).encode()).hexdigest()[:16]
        self._gate = f"sandbox-{digest}:{kk.GATE}"

    def _possess(self) -> None:
        pass  # every thread has the session keyring it was started with

    def _store_keyring(self, *, create: bool) -> int | None:
        session = kk.keyring_id(kk.SESSION_KEYRING, create=False)
        if create:
            return kk.store_keyring(session, self._gate)
        return kk.find_store_keyring(session, self._gate)


class KernelSessionStore(SessionStore):
    kind = "kernel"

    def __init__(self, cache: TokenCache | None = None) -> None:
        super().__init__(KernelEntries(), cache=cache)

    def backend_name(self) -> str:
        return f"Linux kernel keyring (persistent keyring of uid {os.getuid()}, in memory)"

    def login_note(self) -> str | None:
        return login_note()


class LegacyKernelStore(KernelSessionStore):
    """A session an older exls left in the kernel keyring, open to other users' processes
    that share a keyring the persistent keyring is linked into: never read as the session,
    only revoked and removed by logout (and mentioned by auth status)."""

    kind = "kernel-legacy"

    def __init__(self, cache: TokenCache | None = None) -> None:
        super().__init__(cache=cache)
        self.keyring = LegacyKernelEntries()

    def backend_name(self) -> str:
        return "the Linux kernel keyring, where an older exls left it open to other users"

    def clear(self) -> bool:
        existed = super().clear()
        self.keyring.delete("token")  # that exls's token cache (it expires with the token)
        return existed


class SandboxSessionStore(SessionStore):
    """The store of a sandboxed run (``EXLS_SANDBOX``): the kernel store's layout in the
    session keyring, in memory, gone with the login session, and no token cache."""

    kind = "sandbox"

    def __init__(self, home: str) -> None:
        super().__init__(SandboxEntries(home))
        self.home = home

    def backend_name(self) -> str:
        return f"sandbox {self.home}: Linux kernel session keyring, in memory"

    def login_note(self) -> str | None:
        return (
            f"Sandboxed run (EXLS_SANDBOX={self.home}): the session is kept in the kernel "
            "session keyring, apart from your real one; exls logout removes it, and it is "
            "gone when this login session ends."
        )
