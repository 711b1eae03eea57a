"""What the user sees: the link and code always, a QR code only on a terminal, never a secret."""

from __future__ import annotations

import io

import pytest
from device_fakes import ANSI, FakeUI, decode, parse_half_blocks, qr_lines, render_plain

from exls_core.ui import TerminalUI
from exls_flows_device import authorization, display

URI = "https://idp.example/device"
COMPLETE = "https://idp.example/device?user_code=WDJB-MJHT"


def device_code(complete: str | None = COMPLETE) -> authorization.DeviceCode:
    return authorization.DeviceCode(
        device_code="DC-SECRET-7f3a9",
        user_code="WDJB-MJHT",
        verification_uri=URI,
        verification_uri_complete=complete,
        expires_in=600,
        interval=5,
    )


class TTYStream(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_plain_lines_and_no_qr() -> None:
    ui = FakeUI(terminal=False)
    display.show_code(ui, device_code(), show_qr=True)
    assert ui.messages == [
        f"To sign in, visit: {URI}",
        "and enter the code: WDJB-MJHT",
        f"Or open this link, which includes the code: {COMPLETE}",
    ]
    assert ui.rich == []
    assert "█" not in ui.everything


def test_off_a_terminal_without_a_complete_link() -> None:
    ui = FakeUI(terminal=False)
    display.show_code(ui, device_code(complete=None), show_qr=True)
    assert ui.messages == [f"To sign in, visit: {URI}", "and enter the code: WDJB-MJHT"]


def test_on_a_terminal_the_qr_code_holds_the_complete_link() -> None:
    ui = FakeUI(terminal=True)
    display.show_code(ui, device_code(), show_qr=True)
    output = ui.everything
    assert decode(parse_half_blocks(qr_lines(output))) == [COMPLETE]
    assert URI in output and "WDJB-MJHT" in output
    assert f"Or open this link, which includes the code: {COMPLETE}" in ui.messages
    panel_text = render_plain(ui.rich[-1])
    assert "To sign in, visit:  https://idp.example/device" in panel_text
    assert "and enter the code: WDJB-MJHT" in panel_text
    assert "Sign in on another device" in panel_text


def test_the_code_is_bold() -> None:
    ui = FakeUI(terminal=True)
    display.show_code(ui, device_code(), show_qr=False)
    (panel,) = ui.rich
    body = panel.renderable
    bold = [body.plain[span.start : span.end] for span in body.spans if "bold" in str(span.style)]
    assert bold == ["WDJB-MJHT"]


def test_on_a_terminal_without_a_complete_link_the_qr_code_holds_the_plain_one() -> None:
    ui = FakeUI(terminal=True)
    display.show_code(ui, device_code(complete=None), show_qr=True)
    assert decode(parse_half_blocks(qr_lines(ui.everything))) == [URI]
    assert not any(m.startswith("Or open") for m in ui.messages)


def test_no_qr_option_on_a_terminal() -> None:
    ui = FakeUI(terminal=True)
    display.show_code(ui, device_code(), show_qr=False)
    assert "█" not in ui.everything and "▀" not in ui.everything
    assert "WDJB-MJHT" in ui.everything


def test_a_link_too_long_for_a_terminal_qr_code_is_only_printed() -> None:
    long_link = "https://idp.example/device?user_code=WDJB-MJHT&pad=" + "x" * 1000
    ui = FakeUI(terminal=True)
    display.show_code(ui, device_code(complete=long_link), show_qr=True)
    assert "█" not in ui.everything
    assert f"Or open this link, which includes the code: {long_link}" in ui.messages


def test_real_terminal_ui_on_a_terminal_paints_the_qr_code_white_on_black() -> None:
    stream = TTYStream()
    display.show_code(TerminalUI(stream), device_code(), show_qr=True)
    output = stream.getvalue()
    assert "\x1b[97;40m" in output  # bright white ink (light modules) on black
    assert decode(parse_half_blocks(qr_lines(output))) == [COMPLETE]
    plain = ANSI.sub("", output)
    assert plain.index("█") < plain.index("WDJB-MJHT")  # QR first, the code right under it
    assert "DC-SECRET" not in output


def test_real_terminal_ui_off_a_terminal_prints_plain_lines() -> None:
    stream = io.StringIO()
    display.show_code(TerminalUI(stream), device_code(), show_qr=True)
    assert stream.getvalue() == (
        f"To sign in, visit: {URI}\n"
        "and enter the code: WDJB-MJHT\n"
        f"Or open this link, which includes the code: {COMPLETE}\n"
    )


@pytest.mark.parametrize("terminal", [True, False])
@pytest.mark.parametrize("show_qr", [True, False])
def test_the_device_code_is_never_shown(terminal: bool, show_qr: bool) -> None:
    ui = FakeUI(terminal=terminal)
    display.show_code(ui, device_code(), show_qr=show_qr)
    assert "DC-SECRET" not in ui.everything
    assert "DC-SECRET" not in repr(device_code())


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (581, "9:41"),
        (580.2, "9:41"),
        (600, "10:00"),
        (60, "1:00"),
        (59.01, "1:00"),
        (0.4, "0:01"),
        (0, "0:00"),
        (-3, "0:00"),
        (3600, "60:00"),
    ],
)
def test_remaining_time(seconds: float, shown: str) -> None:
    assert display.remaining_text(seconds) == shown


def test_waiting_text() -> None:
    assert display.waiting_text(581) == (
        "Waiting for approval... code expires in 9:41 (Ctrl+C to cancel)"
    )


def test_countdown_shows_a_problem_until_a_check_gets_through() -> None:
    ui = FakeUI()
    with ui.status("start") as line:
        countdown = display.Countdown(line)
        countdown.tick(100)
        countdown.problem("cannot connect to https://idp.example/token")
        countdown.tick(99)
        countdown.problem(None)
        countdown.tick(98)
    assert ui.updates == [
        "start",
        "Waiting for approval... code expires in 1:40 (Ctrl+C to cancel)",
        "Waiting for approval... code expires in 1:39 (Ctrl+C to cancel); "
        "retrying, the last check failed: cannot connect to https://idp.example/token",
        "Waiting for approval... code expires in 1:38 (Ctrl+C to cancel)",
    ]
