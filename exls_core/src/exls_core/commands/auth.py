"""``exls auth``: status, token and flows."""

from __future__ import annotations

import click

from exls_core.cli_app import LazyGroup


@click.group(
    cls=LazyGroup,
    lazy={
        "status": "exls_core.commands.session_cmds:status",
        "token": "exls_core.commands.session_cmds:token",
        "flows": "exls_core.commands.flows:flows",
    },
)
def auth() -> None:
    """Inspect the session and the installed login flows."""
