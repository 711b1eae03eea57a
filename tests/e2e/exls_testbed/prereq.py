"""Missing prerequisites: skip on a developer machine, fail loudly in CI."""

from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType
from typing import NoReturn

import pytest

# apt / npm hints printed with a missing prerequisite.
INSTALL_HINTS: dict[str, str] = {
    "node": "apt-get install -y nodejs npm  (Node >= 20)",
    "npm": "apt-get install -y npm",
    "chromium": "apt-get install -y chromium",
    "chromedriver": "apt-get install -y chromium-driver",
    "gnome-keyring-daemon": "apt-get install -y gnome-keyring",
    "dbus-daemon": "apt-get install -y dbus",
    "dbus-send": "apt-get install -y dbus",
    "secret-tool": "apt-get install -y libsecret-tools",
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing(reason: str) -> NoReturn:
    """In CI a missing prerequisite is a failure (a skipped e2e suite must not look green)."""
    if in_ci():
        pytest.fail(f"e2e prerequisite missing (CI=true, so this fails): {reason}", pytrace=False)
    pytest.skip(f"e2e prerequisite missing: {reason}")


def require_tool(name: str, path: str | None = None) -> str:
    """Absolute path of an executable (PATH lookup, or the given path), else skip/fail."""
    found = shutil.which(path or name)
    if not found:
        missing(f"{name!r} not found; install it: {INSTALL_HINTS.get(name, name)}")
    return found


def require_module(name: str) -> ModuleType:
    """Import a Python test dependency, else skip/fail."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(f"Python package for {name!r} not importable ({exc}); pip install {name}")
