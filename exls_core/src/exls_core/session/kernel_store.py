"""The session in the Linux kernel keyring, for machines where no Secret Service runs.

The layout and its guarantees are the keyring store's (:mod:`exls_core.session.store`: two
slots of chunks and a pointer that commits them, written so that an interrupted store never
mixes sessions); only the entries live elsewhere: ``user`` keys named ``exalsius_cli:session``,
``exalsius_cli:session.a.0``, ... in the user's persistent keyring (``man 7
persistent-keyring``). That is kernel memory, never disk, shared by every login of this user
(a later SSH login finds the session), and gone after a reboot or after
``/proc/sys/kernel/keys/persistent_keyring_expiry`` seconds without use (3 days by default;
every exls command that reads the store renews it). Each key is readable by this user only,
and all of them count against the user's kernel key quota (``/proc/sys/kernel/keys/maxbytes``).
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
    """Named entries as keys in the persistent keyring: what SessionStore needs of a keyring.

    Kernel calls return at once, so they need no thread and no time limit.
    """

    def __init__(self, prefix: str = "") -> None:
        super().__init__(keyring_backend=self)
        self._keyring: int | None = None
        self._prefix = prefix  # before each entry's name: a sandbox's keys are its own

    def _open_ring(self) -> int:
        return kk.persistent_keyring()

    def _ring(self) -> int:
        if self._keyring is None:
            self._keyring = self._open_ring()
        return self._keyring

    def get(self, name: str) -> str | None:
        with _as_keyring_failure():
            key = kk.search(self._ring(), self._prefix + name)
            value = kk.read(key) if key is not None else None
        # Anything but the ASCII exls writes fails the chunks' checksum, as it should.
        return value.decode("utf-8", "replace") if value is not None else None

    def set(self, name: str, value: str) -> None:
        with _as_keyring_failure():
            key = kk.add(self._ring(), self._prefix + name, value.encode("utf-8"))
            kk.set_permissions(key)  # possessor and user; nothing for group or other

    def delete(self, name: str) -> None:
        with _as_keyring_failure():
            key = kk.search(self._ring(), self._prefix + name)
            if key is not None:
                kk.invalidate(key)


class SandboxEntries(KernelEntries):
    """A sandbox's entries: keys in the session keyring (this login session's, or the
    user-session keyring where there is none), never the persistent keyring, named after the
    sandbox (``exalsius_cli:sandbox-<digest of its directory>:session``...) so that neither
    the real session nor another sandbox is ever read or written."""

    def __init__(self, home: str) -> None:
        import hashlib

        digest = hashlib.sha256(os.path.realpath(home).encode()).hexdigest()[:16]
        super().__init__(prefix=f"sandbox-{digest}:")

    def _open_ring(self) -> int:
        return kk.keyring_id(kk.SESSION_KEYRING, create=False)


class KernelSessionStore(SessionStore):
    kind = "kernel"

    def __init__(self, cache: TokenCache | None = None) -> None:
        super().__init__(KernelEntries(), cache=cache)

    def backend_name(self) -> str:
        return f"Linux kernel keyring (persistent keyring of uid {os.getuid()}, in memory)"

    def login_note(self) -> str | None:
        return login_note()


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
