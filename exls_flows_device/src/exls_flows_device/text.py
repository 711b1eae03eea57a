"""Provider text made safe to show: one line, no control characters, bounded, no secrets."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

REDACTED = "[redacted]"


def clean(value: object, limit: int = 200, *, redact: Iterable[str] = ()) -> str:
    """Trim ``value`` to one printable line of at most ``limit`` characters.

    Control and format characters (ANSI escapes, bidi overrides) are dropped so that a
    provider cannot rewrite the terminal; ``redact`` strings (the device code) are masked
    in case a provider echoes them back.
    """
    text = value if isinstance(value, str) else ""
    for secret in redact:
        if secret:
            text = text.replace(secret, REDACTED)
    text = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch) not in {"Cc", "Cf", "Cs", "Co", "Cn"}
    )
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
