"""Provider-supplied text, made safe to show: one line, no control characters, bounded."""

from __future__ import annotations

import unicodedata

_DENIED = "Login was denied in the browser."


def plain(text: str, limit: int = 300) -> str:
    """One line without control or format characters (no terminal escapes, no bidi tricks)."""
    kept = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text)
    line = " ".join(kept.split())
    return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."


def _detail(error: str, description: str | None) -> str:
    detail = plain(error, 80)
    if description and plain(description):
        detail += f": {plain(description)}"
    return detail.rstrip(".")


def authorization_error(error: str, description: str | None) -> str:
    """The message for an ``error`` in the browser's redirect (RFC 6749 4.1.2.1)."""
    if error == "access_denied":
        reason = plain(description or "").rstrip(".")
        return f"Login was denied in the browser ({reason})." if reason else _DENIED
    return f"The identity provider could not log you in: {_detail(error, description)}."


def token_error(error: str, description: str | None) -> str:
    """The message for an error from the token endpoint (RFC 6749 5.2), e.g. invalid_grant."""
    return f"The identity provider refused the login: {_detail(error, description)}."
