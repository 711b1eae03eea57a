"""The email address ``exls login`` routes by: asked, checked, and remembered as the next default.

Where it comes from, in order: ``--email``; a prompt when stdin is a terminal (the last
address used is the default); otherwise one line read from stdin, so scripts can run
``echo alice@acme.com | exls login``. The last address is kept in ``state.json`` in the
state directory: it is not secret, and no token is ever written there.
"""

from __future__ import annotations

import json
import sys
import unicodedata
from pathlib import Path
from typing import IO, Any

from exls_core.errors import UsageError
from exls_core.ui import TerminalUI

MAX_ADDRESS = 254  # RFC 5321 path limit minus the angle brackets
MAX_LOCAL = 64
MAX_LABEL = 63
# Characters that only appear in quoted local parts or in pasted "Name <address>" forms.
FORBIDDEN = set('<>()[]\\,;:"')
EXAMPLE = "alice@example.com"
STATE_FILE = "state.json"
STDIN_HINT_AFTER = 1.0  # seconds of silence on a piped stdin before saying what exls waits for


class InvalidEmail(ValueError):
    """The reason an address was refused, in words for people (``has no @``)."""


def normalize_domain(domain: str) -> str:
    """Lower-case ASCII form of a domain; IDN labels become punycode (bücher.de -> xn--...)."""
    domain = domain.lower()
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidEmail(f"the domain {domain!r} is not a valid international name") from None
    if "." not in domain:
        raise InvalidEmail("the domain needs a dot, e.g. example.com")
    if len(domain) > MAX_ADDRESS - 2:
        raise InvalidEmail("the domain is too long")
    for label in domain.split("."):
        if not label:
            raise InvalidEmail("the domain has an empty part (two dots, or a dot at an end)")
        if len(label) > MAX_LABEL:
            raise InvalidEmail(f"the domain part {label[:20]}... is longer than 63 characters")
        if label.startswith("-") or label.endswith("-"):
            raise InvalidEmail(f"the domain part {label!r} starts or ends with a hyphen")
        if not label.replace("-", "").isalnum():
            raise InvalidEmail(f"the domain part {label!r} may only have letters, digits and -")
    return domain


def validate_email(text: str) -> str:
    """The address, trimmed and with its domain normalised; raises InvalidEmail(reason)."""
    address = text.strip()
    if not address:
        raise InvalidEmail("it is empty")
    if any(unicodedata.category(ch).startswith("C") for ch in address):
        raise InvalidEmail("it contains a control or invisible character")
    if bad := sorted(FORBIDDEN.intersection(address)):
        raise InvalidEmail(f"it contains {bad[0]!r}; enter just the address, e.g. {EXAMPLE}")
    if any(ch.isspace() for ch in address):
        raise InvalidEmail("it contains a space")
    if len(address) > MAX_ADDRESS:
        raise InvalidEmail(f"it is longer than {MAX_ADDRESS} characters")
    if address.count("@") != 1:
        raise InvalidEmail("it has no @" if "@" not in address else "it has more than one @")
    local, _, domain = address.partition("@")
    if not local:
        raise InvalidEmail("nothing comes before the @")
    if len(local) > MAX_LOCAL:
        raise InvalidEmail(f"the part before the @ is longer than {MAX_LOCAL} characters")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise InvalidEmail("the part before the @ has a misplaced dot")
    if not domain:
        raise InvalidEmail("nothing comes after the @")
    return f"{local}@{normalize_domain(domain)}"


def _refusal(address: str, reason: InvalidEmail) -> str:
    return f"{address.strip()[:80]!r} is not a valid email address: {reason}."


# --- the remembered address -------------------------------------------------------------------


def _state_path() -> Path:
    from exls_core.paths import state_dir

    return state_dir() / STATE_FILE


def _read_state() -> dict[str, Any]:
    try:
        state = json.loads(_state_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def last_email() -> str | None:
    """The address of the last successful login, if it is still a valid one."""
    value = _read_state().get("last_email")
    if not isinstance(value, str):
        return None
    try:
        return validate_email(value)
    except InvalidEmail:
        return None


def remember_email(email: str) -> None:
    """Keep the address as the next prompt's default; best effort, failures are ignored."""
    from exls_core.paths import write_json_quietly

    state = _read_state()
    state["last_email"] = email
    # Not secret, but personal: readable by the owner only.
    write_json_quietly(_state_path(), state, private=True)


# --- asking ------------------------------------------------------------------------------------


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
            raise click.UsageError(f"{_refusal(value, exc)} Try again, e.g. {EXAMPLE}.") from None

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
        raise UsageError(f"stdin: {_refusal(line, exc)}") from None


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
            raise UsageError(f"--email: {_refusal(given, exc)}") from None
    stream = sys.stdin if stdin is None else stdin
    if _is_terminal(stream):
        return _prompt(last_email())
    return _read_line(stream, ui)
