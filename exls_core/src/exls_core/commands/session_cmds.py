"""``exls logout``, ``exls auth status`` and ``exls auth token``.

``auth token`` is the hot path of every script. Called exactly as ``exls auth token``, the
entry point (:func:`exls_core.cli.run`) answers it without click; this command is the same
thing for every other way in (``exls auth token`` with options, ``python -m``, tests). While the
stored token is valid it imports only keyring and the session store (no requests, rich, jwt or
flow plugins) and reads one keyring entry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from exls_core.commands.catalog import AUTH, TOP

if TYPE_CHECKING:
    from exls_core.config import Settings
    from exls_core.errors import ExlsError
    from exls_core.session import Session, SessionStore
    from exls_core.session.agent_store import AgentSessionStore


@click.command(short_help=TOP["logout"].short_help)
@click.option(
    "--forwarded",
    is_flag=True,
    help="With a session forwarded from another machine (EXLS_AGENT_SOCKET): end it there too.",
)
def logout(forwarded: bool) -> None:
    """Remove your stored tokens (and revoke them at the provider)."""
    from exls_core.config import load_settings
    from exls_core.session import logout as end_session
    from exls_core.ui import TerminalUI

    ui = TerminalUI()
    settings = load_settings()
    store = _forwarded_store(settings)
    if store is not None:
        if not forwarded:
            raise _belongs_elsewhere(store)
        store.end_forwarded = True
        result = end_session(settings, store=store)  # that session only, as asked
    else:
        result = end_session(settings)
        _stop_forwarding_agent()
    if not result.was_logged_in:
        ui.message("You are not logged in.")
        return
    if result.revocation_problem:
        ui.warning(
            "could not revoke the tokens at the identity provider "
            f"({result.revocation_problem.rstrip('.')}); "
            "local credentials were removed anyway."
        )
    for where in result.also_removed_from:
        ui.message(f"Also removed the session kept in {where}.")
    ui.message("Logged out.")


def _forwarded_store(settings: Settings) -> AgentSessionStore | None:
    """The store in use when it is an agent serving another machine's session."""
    from exls_core.session import StoreError, open_store
    from exls_core.session.agent_store import AgentSessionStore

    store = open_store(settings)
    if not isinstance(store, AgentSessionStore):
        return None
    try:
        store.load()
    except StoreError:
        return None  # not answering: the normal logout says what it can
    return store if store.forwarded_from() else None


def _belongs_elsewhere(store: AgentSessionStore) -> ExlsError:
    from exls_core.errors import ExlsError
    from exls_core.session.agent_protocol import SOCKET_ENV

    return ExlsError(
        f"Your session belongs to {store.forwarded_from()} and is only forwarded here "
        f"(the exls agent at {store.path}); it was not ended.",
        hint=f"To stop using it here, unset {SOCKET_ENV} or close the SSH forward; "
        f'"exls logout --forwarded" ends it on {store.forwarded_from()} too.',
    )


def _stop_forwarding_agent() -> None:
    """A forwarding agent of this machine (exls auth agent) sees the session gone and exits."""
    import sys

    if sys.platform != "win32":
        from exls_core.session.agent_forward import stop_when_idle

        stop_when_idle()


def _found_elsewhere(settings: Settings, store: SessionStore) -> list[tuple[str, str, Session]]:
    """Sessions in the other stores exls can reach here: (kind, backend name, session)."""
    from exls_core.session.selection import other_stores
    from exls_core.session.store import StoreError

    found = []
    for other in other_stores(settings, store):
        try:
            session = other.load()
        except StoreError:
            continue  # not readable now: nothing to say about it
        if session is not None:
            found.append((other.kind, other.backend_name(), session))
    return found


def _elsewhere_note(found: list[tuple[str, str, Session]]) -> None:
    from exls_core.config import SESSION_STORES
    from exls_core.text import plain_text

    for kind, backend, session in found:
        choice = (
            f" (EXLS_SESSION_STORE={kind} would use that one)" if kind in SESSION_STORES else ""
        )
        who = plain_text(session.display_name)  # the provider's words
        click.echo(
            f"  note:     a session of {who} is also kept in {backend}; exls "
            f'uses the store above{choice}; "exls logout" removes both.'
        )


def _relative(seconds: float) -> str:
    amount = abs(int(seconds))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if amount >= size:
            count = amount // size
            text = f"{count} {unit}{'s' if count != 1 else ''}"
            break
    else:
        text = f"{amount} second{'s' if amount != 1 else ''}"
    return f"in {text}" if seconds >= 0 else f"{text} ago"


def _iso(timestamp: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


@click.command(short_help=AUTH["status"].short_help)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
def status(as_json: bool) -> None:
    """Show whether you are logged in, as whom, and until when (exit 1 when not).

    Never prints a token. The status is data: it goes to stdout.
    """
    import json
    import time

    from exls_core.config import load_settings
    from exls_core.session import StoreError, open_store

    settings = load_settings()
    store = open_store(settings)
    try:
        session = store.load()
    except StoreError as exc:
        # Still an answer a script can read: not logged in, and why the keyring failed.
        if not as_json:
            raise
        answer = {
            "logged_in": False,
            "session_store": store.kind,
            "keyring_backend": store.backend_name(),
            "keyring_error": exc.message,
            "keyring_hint": exc.hint,
        }
        click.echo(json.dumps(answer, indent=2))
        click.echo(f"Error: {exc.message}", err=True)  # and for the person reading along
        if exc.hint:
            click.echo(exc.hint, err=True)
        raise click.exceptions.Exit(1) from None
    backend = store.backend_name()
    plaintext = store.is_plaintext()
    elsewhere = _found_elsewhere(settings, store)
    other_sessions = [
        {"session_store": kind, "keyring_backend": name, "email": found.email}
        for kind, name, found in elsewhere
    ]
    if session is None:
        if as_json:
            answer = {
                "logged_in": False,
                "session_store": store.kind,
                "keyring_backend": backend,
                "other_sessions": other_sessions,
            }
            click.echo(json.dumps(answer, indent=2))
        else:
            click.echo("You are not logged in.")
            click.echo(f"  {store.label + ':':<9} {backend}")
            _elsewhere_note(elsewhere)
        raise click.exceptions.Exit(1)

    now = time.time()
    left = session.expires_at - now
    matches = (session.issuer, session.client_id) == (settings.issuer, settings.client_id)
    if as_json:
        data = {
            "logged_in": True,
            "email": session.email,
            "subject": session.subject,
            "issuer": session.issuer,
            "client_id": session.client_id,
            "expires_at": _iso(session.expires_at),
            "expires_in": int(left),
            "expired": left <= 0,
            "refreshable": store.refreshable(session),
            "scopes": list(session.scopes),
            "audience": session.audience,
            "kind": session.kind,
            "identity_issuer": session.identity_issuer,
            "flow": session.flow,
            "logged_in_at": _iso(session.logged_in_at),
            "session_store": store.kind,
            "keyring_backend": backend,
            "keyring_plaintext": plaintext,
            "matches_settings": matches,
            "other_sessions": other_sessions,
            **store.facts(),
        }
        click.echo(json.dumps(data, indent=2))
        return
    if left > 0:
        expiry = f"{_iso(session.expires_at)} ({_relative(left)})"
    else:
        expiry = f"{_iso(session.expires_at)} (expired {_relative(left)})"
    if store.refreshable(session):
        expiry += ", renewed automatically" if left > 0 else ", renewed on next use"
    from exls_core.text import plain_text  # the provider's words, made safe for the terminal

    click.echo(f"Logged in as {plain_text(session.display_name)}")
    rows = [
        ("subject", session.subject),
        *([("identity", f"workload of {session.identity_issuer}")] if session.is_workload else []),
        ("issuer", session.issuer),
        ("expires", expiry),
        ("scopes", " ".join(session.scopes)),
        *([("audience", session.audience)] if session.audience else []),
        ("flow", session.flow),
        (store.label, backend + (" (stores tokens unencrypted)" if plaintext else "")),
    ]
    for name, value in rows:
        click.echo(f"  {name + ':':<9} {plain_text(value)}")
    _elsewhere_note(elsewhere)
    if not matches:
        click.echo(
            f"  note:     exls is now configured for {settings.issuer} "
            f'(client {settings.client_id}); run "exls login".'
        )


@click.command(short_help=AUTH["token"].short_help)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON: the token, its expiry (ISO 8601), seconds left and the token type.",
)
def token(as_json: bool) -> None:
    """Print a valid access token on stdout (refreshing it if needed).

    For scripts: curl -H "Authorization: Bearer $(exls auth token)" ...
    """
    from exls_core.api import access_token_and_expiry  # as exls_core.cli's fast path

    access_token, expires_at = access_token_and_expiry()
    if not as_json:
        click.echo(access_token)
        return
    import json
    import time

    data = {
        "access_token": access_token,
        "expires_at": _iso(expires_at),
        "expires_in": int(expires_at - time.time()),
        "token_type": "Bearer",
    }
    click.echo(json.dumps(data, indent=2))
