"""exls core: the CLI, the plugin contract (:mod:`exls_core.plugin`) and session handling.

From Python (docs/python.md)::

    import exls_core

    token = exls_core.access_token()          # what `exls auth token` prints
    api = exls_core.authorized_session()      # a requests session that sends it
    api.get("https://api.exalsius.ai/...")

Keep this module tiny: every command imports it, including the fast ``auth token`` path. The
names below are imported from their modules on first use (PEP 562).
"""

from __future__ import annotations

from exls_core.lazy import lazy_names

__version__ = "0.1.0"

TYPE_CHECKING = False  # as typing's (mypy reads it so); importing typing costs auth token

if TYPE_CHECKING:  # what type checkers and readers see; at run time see __getattr__
    from exls_core.api import access_token, authorized_session
    from exls_core.authorized import AuthorizedSession
    from exls_core.errors import ExlsError
    from exls_core.session.refresh import NotLoggedIn, SessionExpired
    from exls_core.session.store import StoreError

_HOME = {
    "access_token": "api",
    "authorized_session": "api",
    "AuthorizedSession": "authorized",
    "ExlsError": "errors",
    "NotLoggedIn": "session.refresh",
    "SessionExpired": "session.refresh",
    "StoreError": "session.store",
}

__all__ = [
    "AuthorizedSession",
    "ExlsError",
    "NotLoggedIn",
    "SessionExpired",
    "StoreError",
    "__version__",
    "access_token",
    "authorized_session",
]


__getattr__, __dir__ = lazy_names(__name__, _HOME, globals(), __all__)
del lazy_names
