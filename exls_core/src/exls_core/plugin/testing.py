"""Testing helpers for plugin authors: a pytest fixture for a sandboxed exls.

Load it in your plugin's tests with ``-p exls_core.plugin.testing`` (``addopts`` in your
pytest configuration), then ask for the ``exls_sandbox`` fixture::

    def test_exls_lists_my_flow(exls_sandbox):
        ...  # every exls this test starts runs sandboxed

Imported by pytest only, never by exls itself.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["ExlsSandbox", "exls_sandbox"]


@dataclass(frozen=True)
class ExlsSandbox:
    """A sandboxed exls (``EXLS_SANDBOX``) for one test."""

    home: Path
    """The test home: ``config``, ``cache`` and ``state`` of exls are in here."""

    @property
    def config_file(self) -> Path:
        """Where a sandboxed exls reads its config file: write ``[flows.<id>]`` tables here."""
        return self.home / "config" / "config.toml"


@pytest.fixture
def exls_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ExlsSandbox:
    """Every exls this test runs, in process or as a subprocess, is sandboxed.

    ``EXLS_SANDBOX`` names a fresh test home under ``tmp_path`` (config file, discovery and
    key caches, remembered email), so nothing is read from or written to your real exls
    directories; the session goes to the sandbox's store in the kernel session keyring, and
    the kernel token cache is off. On Linux the test process first joins a new anonymous
    session keyring (its subprocesses inherit it), so the sandbox's keys are gone when the
    test run ends. The ``EXLS_*`` variables of your shell are removed for the test (but
    ``EXLS_KERNEL_KEY_SCOPE``): set what the test needs with ``monkeypatch.setenv``.
    """
    for name in list(os.environ):
        # EXLS_KERNEL_KEY_SCOPE stays: a test suite's own isolation of kernel keys.
        if name.startswith("EXLS_") and name != "EXLS_KERNEL_KEY_SCOPE":
            monkeypatch.delenv(name)
    home = tmp_path / "exls-sandbox"
    home.mkdir(mode=0o700)
    if sys.platform == "linux":
        from exls_core.session import kernel_keyring

        kernel_keyring.join_new_session_keyring()  # fails loudly where the kernel refuses
    monkeypatch.setenv("EXLS_SANDBOX", str(home))
    return ExlsSandbox(home)
