"""Text from elsewhere (a provider, a route, a plugin) made safe for the terminal.

One line, no control or format characters (no ANSI escapes, no bidi overrides, no zero-width
tricks), bounded, and with secrets masked. Plugins reach this through
:func:`exls_core.plugin.plain_text`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

REDACTED = "[redacted]"


def is_control(ch: str) -> bool:
    """Control, format, surrogate, private-use or unassigned: nothing a terminal should get."""
    return unicodedata.category(ch).startswith("C")


def has_control(text: str) -> bool:
    return any(is_control(ch) for ch in text)


def plain_text(
    value: object, limit: int = 300, *, redact: Iterable[str] = (), drop_controls: bool = False
) -> str:
    """``value`` (anything; non-strings become "") as one printable line of at most ``limit``.

    Whitespace runs become one space. Other control characters become a space, or vanish
    with ``drop_controls`` (for codes a person types: ``WDJB-\\u202eMJHT`` stays one code).
    Each ``redact`` string (a device code, an authorization code) is masked first, so a
    provider that echoes it back cannot make exls print it.
    """
    text = value if isinstance(value, str) else ""
    for secret in redact:
        if secret:
            text = text.replace(secret, REDACTED)
    gap = "" if drop_controls else " "
    text = "".join(" " if ch.isspace() else gap if is_control(ch) else ch for ch in text)
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
