"""The address of the last successful login, kept as the next prompt's default.

It lives in ``state.json`` in the state directory: not secret, but personal, so the file is
private (see :mod:`exls_core.cache`); no token is ever written there.
"""

from __future__ import annotations

from typing import Any

from exls_core import cache
from exls_core.email.address import InvalidEmail, validate_email

STATE_FILE = "state.json"


def _state_path() -> str:
    import os

    from exls_core.paths import user_dir

    return os.path.join(user_dir("state"), STATE_FILE)


def _read_state() -> dict[str, Any]:
    try:
        state = cache.read_json(_state_path())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def last_email() -> str | None:
    """The address of the last successful login, if it is still a valid one."""
    value = _read_state().get("last_email")
    if not isinstance(value, str):
        return None
    try:
        return validate_email(value)
    except InvalidEmail:
        return None


def remember_email(email: str) -> None:
    """Keep the address as the next prompt's default; best effort, failures are ignored."""
    state = _read_state()
    state["last_email"] = email
    cache.write_json(_state_path(), state)
