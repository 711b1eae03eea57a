"""A keyring backend that several processes can share: one file per entry, atomic writes.

Test fixture only (the in-memory backend cannot be shared across processes). Selected with
PYTHON_KEYRING_BACKEND=exls_test_filekeyring.FileKeyring and EXLS_TEST_KEYRING_DIR.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError


class FileKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    @property
    def directory(self) -> Path:
        return Path(os.environ["EXLS_TEST_KEYRING_DIR"])

    def _path(self, service: str, username: str) -> Path:
        digest = hashlib.sha256(f"{service}\0{username}".encode()).hexdigest()
        return self.directory / digest

    def get_password(self, service: str, username: str) -> str | None:
        try:
            return self._path(service, username).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def set_password(self, service: str, username: str, password: str) -> None:
        path = self._path(service, username)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(password, encoding="utf-8")
        os.replace(tmp, path)  # readers see the old or the new value, never half of one

    def delete_password(self, service: str, username: str) -> None:
        try:
            self._path(service, username).unlink()
        except FileNotFoundError:
            raise PasswordDeleteError("not found") from None

    def count(self) -> int:
        return len([p for p in self.directory.iterdir() if not p.name.endswith(".tmp")])
