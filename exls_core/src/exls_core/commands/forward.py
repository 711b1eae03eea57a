"""``exls auth agent``: this machine's session, served to other machines over ``ssh -R``."""

from __future__ import annotations

import sys

import click

from exls_core.commands.catalog import AUTH


@click.command(short_help=AUTH["agent"].short_help)
def agent() -> None:
    """Serve this machine's session to other machines; print the agent's socket.

    \b
    Forward it over SSH, and exls on the server uses this machine's session:
      ssh -R /run/user/1000/exls.sock:"$(exls auth agent)" gpu-box
      gpu-box$ export EXLS_AGENT_SOCKET=/run/user/1000/exls.sock

    The agent hands out access tokens and renews them here: the refresh token never leaves
    this machine. See docs/forwarding.md.
    """
    from exls_core.config import load_settings
    from exls_core.errors import UsageError
    from exls_core.session import NotLoggedIn, open_store

    if sys.platform == "win32":
        raise UsageError("The exls agent runs on Linux and macOS only.")
    from exls_core.session.agent_forward import ensure_forwarding_agent
    from exls_core.session.agent_store import AgentSessionStore

    store = open_store(load_settings())
    if store.load() is None:
        raise NotLoggedIn()
    if isinstance(store, AgentSessionStore) and store.forwarded_from():
        click.echo(store.path)  # forwarded here already: pass the same agent on
        return
    click.echo(ensure_forwarding_agent())
