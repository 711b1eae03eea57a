"""Sessions: tokens in the OS keyring, ID token validation, refresh, logout.

The public API for exls commands::

    from exls_core.session import get_access_token
    headers = {"Authorization": f"Bearer {get_access_token()}"}

Importing this package is cheap: every name below is imported from its module on first use
(PEP 562), so ``exls auth token`` loads the store and refresh modules but not validation,
login or logout (no requests, jwt or cryptography).
"""

from __future__ import annotations

from exls_core.lazy import lazy_names

TYPE_CHECKING = False  # as typing's (mypy reads it so); importing typing costs auth token

if TYPE_CHECKING:  # what type checkers and readers see; at run time see __getattr__
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
    from exls_core.session.selection import open_store
    from exls_core.session.store import CorruptedSession, SessionStore, StoreError
    from exls_core.session.validation import IdTokenRejected

_HOME = {
    "complete_login": "login",
    "Session": "model",
    "NotLoggedIn": "refresh",
    "SessionExpired": "refresh",
    "check_matches": "refresh",
    "current_session": "refresh",
    "get_access_token": "refresh",
    "LogoutResult": "revoke",
    "logout": "revoke",
    "open_store": "selection",
    "CorruptedSession": "store",
    "SessionStore": "store",
    "StoreError": "store",
    "IdTokenRejected": "validation",
}

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
    "open_store",
]


__getattr__, __dir__ = lazy_names(__name__, _HOME, globals(), __all__)
del lazy_names
