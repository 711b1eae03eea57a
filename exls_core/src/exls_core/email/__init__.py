"""The email address ``exls login`` routes by: asked, checked, and remembered as the next default.

Where it comes from, in order: ``--email``; a prompt when stdin is a terminal (the last
address used is the default); otherwise one line read from stdin, so scripts can run
``echo alice@acme.com | exls login``. The last address is kept in ``state.json`` in the
state directory: it is not secret, and no token is ever written there.
"""

from __future__ import annotations

from exls_core.email.address import InvalidEmail, normalize_domain, validate_email
from exls_core.email.prompt import ask_email
from exls_core.email.remembered import last_email, remember_email

__all__ = [
    "InvalidEmail",
    "ask_email",
    "last_email",
    "normalize_domain",
    "remember_email",
    "validate_email",
]
