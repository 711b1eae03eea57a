"""``exls auth``: status, token and flows."""

from __future__ import annotations

import click

from exls_core.cli_app import LazyGroup
from exls_core.commands.catalog import AUTH, TOP


@click.group(cls=LazyGroup, lazy=AUTH, short_help=TOP["auth"].short_help)
def auth() -> None:
    """Inspect the session and the installed login flows."""
