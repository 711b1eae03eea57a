"""Fixtures for the session tests: an in-memory keyring, signing keys, a local provider."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.core
import pytest
from session_testkit import CLIENT_ID, FakeIdP, MemoryKeyring, SigningKey, rsa_key

from exls_core.config import Settings
from exls_core.session import store as store_module


@pytest.fixture(autouse=True)
def _private_runtime_dir() -> None:
    # platformdirs ignores a runtime directory that is not private (and falls back to a
    # shared /tmp one): create it the way a login session does, mode 0700.
    path = Path(os.environ["XDG_RUNTIME_DIR"])
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.core._keyring_backend
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    store_module._warned_plaintext = False
    yield backend
    if backend.hang is not None:
        backend.hang.set()  # let abandoned threads finish
    keyring.core._keyring_backend = previous


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return rsa_key("k1")


@pytest.fixture
def idp(signing_key: SigningKey) -> Iterator[FakeIdP]:
    server = FakeIdP(key=signing_key).start()
    yield server
    server.stop()


@pytest.fixture
def settings(idp: FakeIdP) -> Settings:
    return Settings(issuer=idp.issuer, client_id=CLIENT_ID, http_timeout=5.0)
