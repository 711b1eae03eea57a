"""Keyring backends for the adversarial suite: the shared file keyring, made to misbehave.

Child processes select it with ``PYTHON_KEYRING_BACKEND=adv_keyrings.FaultyKeyring`` (this
folder and tests/session on PYTHONPATH) and ``EXLS_TEST_KEYRING_DIR``; the fault comes from
``EXLS_TEST_KEYRING_FAULT``:

``locked``        every call raises KeyringLocked (a locked Secret Service collection)
``init``          every call raises InitError (a backend that cannot start)
``hang``          every call blocks for EXLS_TEST_KEYRING_HANG seconds (default 30)
``fail-write=N``  the Nth write (set or delete) of this process and all later ones fail
``hang-set=NAME`` the first write of entry NAME blocks for EXLS_TEST_KEYRING_HANG seconds,
                  then lands (a call that outlives exls's timeout and completes later)
``hang-if=REGEX`` the same for the first write of a value that matches REGEX
``corrupt``       reads return the stored value with characters in its middle altered
``truncate``      reads return the first half of the stored value
``bytes``         reads return bytes instead of text

Without a fault it behaves exactly like ``exls_test_filekeyring.FileKeyring``. With
``EXLS_TEST_KEYRING_LOG`` set, every call is first appended to that file (``set session``),
so a test sees the calls a process attempted, even those it abandoned.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any

from exls_test_filekeyring import FileKeyring
from keyring.errors import InitError, KeyringLocked, PasswordSetError

FAULT_ENV = "EXLS_TEST_KEYRING_FAULT"
HANG_ENV = "EXLS_TEST_KEYRING_HANG"
LOG_ENV = "EXLS_TEST_KEYRING_LOG"
RELEASE = threading.Event()  # in-process tests set it to end abandoned hanging calls
RAN_OUT = "keyring-hang-ran-out"  # written beside the keyring directory when a hang ran out
ENDED: list[str] = []  # in-process: how each hang ended ("released" or "ran out")


class DirKeyring(FileKeyring):
    """The file keyring on an explicit directory (in-process views on a child's keyring)."""

    def __init__(self, directory: Path) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._directory = directory

    @property
    def directory(self) -> Path:
        return self._directory

    def set_properties_from_env(self) -> None:
        # The sandbox's keyring takes no KEYRING_PROPERTY_* from the test process; and scenario
        # threads make these views while tests change os.environ, which must not be iterated.
        pass


class FaultyKeyring(FileKeyring):
    priority = 1

    def __init__(self, fault: str | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.fault = os.environ.get(FAULT_ENV, "") if fault is None else fault
        self.writes = 0
        self.hung = False

    def _log(self, operation: str, username: str) -> None:
        path = os.environ.get(LOG_ENV)
        if path:
            with open(path, "a", encoding="utf-8") as log:
                log.write(f"{operation} {username}\n")

    def _enter(self) -> None:
        if self.fault == "locked":
            raise KeyringLocked("the collection is locked")
        if self.fault == "init":
            raise InitError("cannot connect to the Secret Service bus")
        if self.fault == "hang":
            released = RELEASE.wait(float(os.environ.get(HANG_ENV, "30")))
            ENDED.append("released" if released else "ran out")
            if not released:  # the caller waited it out: the test sees this file
                (self.directory.parent / RAN_OUT).touch()

    def _write(self) -> None:
        self.writes += 1
        limit = self.fault.partition("=")[2] if self.fault.startswith("fail-write=") else ""
        if limit and self.writes >= int(limit):
            raise PasswordSetError(f"write {self.writes} refused (injected)")

    def get_password(self, service: str, username: str) -> Any:
        self._log("get", username)
        self._enter()
        value = super().get_password(service, username)
        if value is None:
            return None
        if self.fault == "corrupt" and len(value) > 2:
            middle = len(value) // 2
            flipped = "x" if value[middle] != "x" else "y"
            return value[:middle] + flipped + value[middle + 1 :]
        if self.fault == "truncate":
            return value[: len(value) // 2]
        if self.fault == "bytes":
            return value.encode()
        return value

    def set_password(self, service: str, username: str, password: str) -> None:
        self._log("set", username)
        self._enter()
        kind, _, argument = self.fault.partition("=")
        if not self.hung and (
            (kind == "hang-set" and argument == username)
            or (kind == "hang-if" and re.search(argument, password))
        ):
            self.hung = True
            RELEASE.wait(float(os.environ.get(HANG_ENV, "30")))
        self._write()
        super().set_password(service, username, password)

    def delete_password(self, service: str, username: str) -> None:
        self._log("delete", username)
        self._enter()
        self._write()
        super().delete_password(service, username)
