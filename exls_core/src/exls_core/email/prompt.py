"""Asking for the address: ``--email``, a prompt on a terminal, or one line from stdin."""

from __future__ import annotations

import sys
from typing import IO

from exls_core.email.address import EXAMPLE, MAX_ADDRESS, InvalidEmail, refusal, validate_email
from exls_core.email.remembered import last_email
from exls_core.errors import UsageError
from exls_core.ui import TerminalUI

STDIN_HINT_AFTER = 1.0  # seconds of silence on a piped stdin before saying what exls waits for


def _is_terminal(stream: IO[str] | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):
        return False


def _prompt(default: str | None) -> str:
    import click

    def check(value: str) -> str:
        try:
            return validate_email(value)
        except InvalidEmail as exc:
            # click.prompt shows a UsageError's message and asks again.
            raise click.UsageError(f"{refusal(value, exc)} Try again, e.g. {EXAMPLE}.") from None

    address: str = click.prompt("Email address", default=default, value_proc=check, err=True)
    return address


def _wait_for_input(stream: IO[str], ui: TerminalUI) -> None:
    """Say what exls waits for when a pipe stays silent (e.g. ``ssh host exls login``)."""
    try:
        import select

        ready, _, _ = select.select([stream], [], [], STDIN_HINT_AFTER)
    except (OSError, ValueError, TypeError, AttributeError):
        return  # no select on this stream (Windows pipes, in-memory test streams)
    if not ready:
        ui.message("Waiting for your email address on standard input (or pass --email EMAIL)...")


def _read_line(stream: IO[str] | None, ui: TerminalUI) -> str:
    missing = UsageError(
        "No email address: pass --email EMAIL (or pipe one on stdin) when not in a terminal."
    )
    if stream is None or stream.closed:
        raise missing
    _wait_for_input(stream, ui)
    try:
        line = stream.readline(MAX_ADDRESS * 4 + 2)
    except (OSError, ValueError, UnicodeDecodeError):
        raise missing from None
    if not line.strip():
        raise missing
    try:
        return validate_email(line)
    except InvalidEmail as exc:
        raise UsageError(f"stdin: {refusal(line, exc)}") from None


def ask_email(given: str | None, ui: TerminalUI, *, stdin: IO[str] | None = None) -> str:
    """The address to log in with: ``--email``, else a prompt on a terminal, else a stdin line.

    Bad input is a UsageError (exit 2), except at the prompt, which says why and asks again.
    ``stdin`` defaults to ``sys.stdin``; whether it is a terminal decides between prompting
    and reading a line.
    """
    if given is not None:
        try:
            return validate_email(given)
        except InvalidEmail as exc:
            raise UsageError(f"--email: {refusal(given, exc)}") from None
    stream = sys.stdin if stdin is None else stdin
    if _is_terminal(stream):
        return _prompt(last_email())
    return _read_line(stream, ui)
