"""Fixtures for the install tests; the helpers live in install_support.py."""

from install_support import make_venv

__all__ = ["make_venv"]
