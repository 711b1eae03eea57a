"""Sessions: tokens in the OS keyring, ID token validation, refresh, logout.

The public API for exls commands::

    from exls_core.session import get_access_token
    headers = {"Authorization": f"Bearer {get_access_token()}"}

Importing this package is cheap (no requests, jwt or cryptography): ``exls auth token``
depends on it.
"""

from __future__ import annotations

from exls_core.session.login import complete_login
from exls_core.session.model import Session
from exls_core.session.refresh import (
    NotLoggedIn,
    SessionExpired,
    check_matches,
    current_session,
    get_access_token,
)
from exls_core.session.revoke import LogoutResult, logout
from exls_core.session.store import CorruptedSession, SessionStore, StoreError
from exls_core.session.validation import IdTokenRejected

__all__ = [
    "CorruptedSession",
    "IdTokenRejected",
    "LogoutResult",
    "NotLoggedIn",
    "Session",
    "SessionExpired",
    "SessionStore",
    "StoreError",
    "check_matches",
    "complete_login",
    "current_session",
    "get_access_token",
    "logout",
]
