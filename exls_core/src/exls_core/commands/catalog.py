"""Every lazily imported command: where it lives and its one-line help, in one place.

``exls --help`` lists commands from here without importing them (start-up matters), and each
command passes its entry's text as ``short_help``; a test checks that it is also the first
line of the command's docstring, so the listing and ``exls <command> --help`` cannot drift.
Standard library only.
"""

from __future__ import annotations

from typing import NamedTuple


class Entry(NamedTuple):
    target: str
    """``module:attribute`` of the click command."""
    short_help: str


TOP = {
    "login": Entry(
        "exls_core.commands.login:login", "Log in and store your tokens in the system keyring."
    ),
    "logout": Entry(
        "exls_core.commands.session_cmds:logout",
        "Remove your stored tokens (and revoke them at the provider).",
    ),
    "auth": Entry(
        "exls_core.commands.auth:auth", "Inspect the session and the installed login flows."
    ),
}
AUTH = {
    "status": Entry(
        "exls_core.commands.session_cmds:status",
        "Show whether you are logged in, as whom, and until when (exit 1 when not).",
    ),
    "token": Entry(
        "exls_core.commands.session_cmds:token",
        "Print a valid access token on stdout (refreshing it if needed).",
    ),
    "agent": Entry(
        "exls_core.commands.forward:agent",
        "Serve this machine's session to other machines; print the agent's socket.",
    ),
    "flows": Entry(
        "exls_core.commands.flows:flows",
        "List installed login flows, their availability and priority.",
    ),
}
GROUPS = {"exls": TOP, "exls auth": AUTH}
