"""The browser flow's messages for provider errors; their text goes through plain_text."""

from __future__ import annotations

from exls_core.plugin import plain_text

_DENIED = "Login was denied in the browser."


def _detail(error: str, description: str | None) -> str:
    detail = plain_text(error, 80)
    if description and plain_text(description):
        detail += f": {plain_text(description)}"
    return detail.rstrip(".")


def authorization_error(error: str, description: str | None) -> str:
    """The message for an ``error`` in the browser's redirect (RFC 6749 4.1.2.1)."""
    if error == "access_denied":
        reason = plain_text(description or "").rstrip(".")
        return f"Login was denied in the browser ({reason})." if reason else _DENIED
    return f"The identity provider could not log you in: {_detail(error, description)}."


def token_error(error: str, description: str | None) -> str:
    """The message for an error from the token endpoint (RFC 6749 5.2), e.g. invalid_grant."""
    return f"The identity provider refused the login: {_detail(error, description)}."
