"""What the user sees: where to go, the code to enter, a QR code, and a countdown.

On a terminal: a QR code of the complete link (the phone then needs no typing) and a
panel with the link and the code in bold. Elsewhere (CI logs, pipes): plain lines only,
since a QR code in a log is noise. Everything goes through the UI, hence to stderr.
"""

from __future__ import annotations

import math

from exls_core.plugin import UI, StatusLine
from exls_flows_device.authorization import DeviceCode

MAX_QR_DATA = 1000  # characters; longer links give codes too large for a terminal
QR_STYLE = "bright_white on black"  # matches qr.py: the ink draws light modules
VISIT = "To sign in, visit: "
ENTER = "and enter the code: "
COMPLETE = "Or open this link, which includes the code: "


def show_code(ui: UI, code: DeviceCode, *, show_qr: bool) -> None:
    if not ui.is_terminal:
        ui.message(f"{VISIT}{code.verification_uri}")
        ui.message(f"{ENTER}{code.user_code}")
        if code.verification_uri_complete:
            ui.message(f"{COMPLETE}{code.verification_uri_complete}")
        return

    from rich.panel import Panel
    from rich.style import Style
    from rich.text import Text

    if show_qr and len(code.qr_url) <= MAX_QR_DATA:
        from exls_flows_device.qr import render

        ui.message("Scan this QR code with your phone to sign in:")
        ui.print_rich(Text(render(code.qr_url), style=QR_STYLE, no_wrap=True))
    body = Text.assemble(
        VISIT + " ",  # one more space lines the values up
        (code.verification_uri, Style(link=code.verification_uri)),
        "\n",
        ENTER,
        (code.user_code, "bold"),
    )
    ui.print_rich(Panel(body, title="Sign in on another device", expand=False, padding=(1, 2)))
    if code.verification_uri_complete:
        ui.message(f"{COMPLETE}{code.verification_uri_complete}")


def remaining_text(seconds: float) -> str:
    """Seconds left as m:ss, rounded up so that 0:00 means it has run out."""
    total = max(0, math.ceil(seconds))
    return f"{total // 60}:{total % 60:02d}"


def waiting_text(seconds: float, problem: str | None = None) -> str:
    text = f"Waiting for approval... code expires in {remaining_text(seconds)} (Ctrl+C to cancel)"
    return f"{text}; retrying, the last check failed: {problem}" if problem else text


class Countdown:
    """Feeds the poller's ticks and problems into one status line."""

    def __init__(self, line: StatusLine) -> None:
        self._line = line
        self._problem: str | None = None

    def tick(self, seconds: float) -> None:
        self._line.update(waiting_text(seconds, self._problem))

    def problem(self, reason: str | None) -> None:
        self._problem = reason
