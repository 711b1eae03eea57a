"""A QR code as terminal text: two module rows per line with half-block characters.

Colour choice: LIGHT modules are drawn with the ink (█ ▀ ▄) and dark modules are left
blank. On a typical dark terminal (light text on a dark background) the code thus shows
dark on light, as scanners expect, even where colours are off (NO_COLOR, dumb terminals).
display.py also paints the text bright white on black, which keeps it correct on light
terminals too. The quiet zone of 4 modules is part of the text, as light blocks.
"""

from __future__ import annotations

QUIET_ZONE = 4  # modules; ISO/IEC 18004 asks for 4

# (top is light, bottom is light) -> character
_CHARS = {
    (True, True): "█",
    (True, False): "▀",
    (False, True): "▄",
    (False, False): " ",
}


def matrix(data: str) -> list[list[bool]]:
    """The QR modules for ``data`` with the quiet zone; True means dark.

    Error correction level L keeps the code small enough for a terminal; a screen is
    clean, so the extra redundancy of M or Q buys little.
    """
    import qrcode
    from qrcode.constants import ERROR_CORRECT_L

    code = qrcode.QRCode(error_correction=ERROR_CORRECT_L, border=QUIET_ZONE)
    code.add_data(data)
    code.make(fit=True)
    return [[bool(module) for module in row] for row in code.get_matrix()]


def render(data: str) -> str:
    """``data`` as a QR code in half-block text, one line per two module rows."""
    modules = matrix(data)
    if len(modules) % 2:
        modules.append([True] * len(modules[0]))  # below the quiet zone: blank (dark)
    lines = []
    for top, bottom in zip(modules[::2], modules[1::2], strict=True):
        lines.append("".join(_CHARS[not t, not b] for t, b in zip(top, bottom, strict=True)))
    return "\n".join(lines)
