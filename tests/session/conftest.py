"""Fixtures for the session tests: an in-memory keyring, signing keys, a local provider."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.core
import pytest
from exls_test_filekeyring import FileKeyring
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


@pytest.fixture
def shared_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, idp: FakeIdP) -> dict[str, str]:
    """A file keyring every process shares (this process too), and the environment for
    exls subprocesses: that keyring, the local provider, this directory on PYTHONPATH."""
    monkeypatch.setenv("EXLS_TEST_KEYRING_DIR", str(tmp_path / "keyring"))
    previous = keyring.core._keyring_backend
    keyring.set_keyring(FileKeyring())
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join(
            [str(Path(__file__).resolve().parent), env.get("PYTHONPATH", "")]
        ),
        PYTHON_KEYRING_BACKEND="exls_test_filekeyring.FileKeyring",
        EXLS_AUTH_ISSUER=idp.issuer,
        EXLS_AUTH_CLIENT_ID=CLIENT_ID,
        # Ten interpreters start at once on two cores: a keyring call may wait its turn for
        # long on a loaded machine. What is tested is the lock, not the keyring's speed.
        EXLS_KEYRING_TIMEOUT="60",
    )
    yield env
    keyring.core._keyring_backend = previous
