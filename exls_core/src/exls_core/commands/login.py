"""``exls login``: ask for the email, route to SSO, run a flow, validate and store the tokens."""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

import click

from exls_core.commands.catalog import TOP


def _complete_flow_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    from exls_core.entry_points import flow_entries

    ids = ["auto", *sorted({e.name for e in flow_entries()})]
    return [i for i in ids if i.startswith(incomplete)]


@click.command(short_help=TOP["login"].short_help)
@click.option(
    "--auth-flow",
    "auth_flow",
    metavar="FLOW",
    shell_complete=_complete_flow_ids,
    help="auto (default), pkce, device_code, or another installed flow. Env: EXLS_AUTH_FLOW.",
)
@click.option("--email", metavar="EMAIL", help="Your email address (skips the prompt).")
@click.option(
    "--organization",
    metavar="ORG",
    help="Sign in to this organization (Auth0 organization). Env: EXLS_AUTH_ORGANIZATION.",
)
@click.option("--no-qr", is_flag=True, help="Do not show a QR code in the device code flow.")
@click.option(
    "--no-browser",
    is_flag=True,
    help="Open no browser here: print the sign-in link for a browser anywhere, then paste "
    "the address it ends on (or forward the port with ssh -L).",
)
def login(
    auth_flow: str | None,
    email: str | None,
    organization: str | None,
    no_qr: bool,
    no_browser: bool,
) -> None:
    """Log in and store your tokens in the system keyring.

    The flow is chosen for this environment: a browser (PKCE) where one can open,
    otherwise a device code you approve on another device.
    """
    from exls_core.config import load_settings
    from exls_core.entry_points import flow_entries, require_installed, split_disabled
    from exls_core.ui import TerminalUI

    ui = TerminalUI()
    settings = load_settings()
    requested = auth_flow or settings.flow
    enabled, off = split_disabled(flow_entries())
    require_installed(requested, {e.name for e in enabled}, {e.name for e in off})

    _login(
        settings,
        requested,
        email,
        organization or settings.organization,
        ui,
        show_qr=not no_qr,
        launch_browser=not no_browser,
    )
    return None


def _import_in_background() -> Any:
    """Import what validation needs (PyJWT, cryptography) while the user is busy in the
    browser or on the phone, so that `Logged in as ...` follows the provider's answer at
    once. Returns the thread: it must end before the interpreter does (see _login)."""
    import threading

    from exls_core.session.login import prepare_imports

    thread = threading.Thread(target=prepare_imports, name="exls-warm-up", daemon=True)
    thread.start()
    return thread


def _login(
    settings: Any,
    requested: str,
    email: str | None,
    organization: str | None,
    ui: Any,
    *,
    show_qr: bool,
    launch_browser: bool,
) -> None:
    from exls_core.discovery import fetch_metadata
    from exls_core.email import remember_email
    from exls_core.http import new_session
    from exls_core.plugin import FlowRequest, TokenResponse
    from exls_core.registry import Flow, load_registry
    from exls_core.resolver import (
        AUTO,
        choose,
        current_environment,
        fit_provider,
        flow_request,
        flow_settings,
        run_flows,
        servable_flows,
    )
    from exls_core.routing import resolve_route
    from exls_core.session import complete_login, open_store
    from exls_core.session.login import validate_response

    # Everything that can be decided locally comes before the first network request.
    registry = load_registry(warn=ui.warning)
    installed_ids = sorted({*registry.installed_ids, *registry.disabled})
    for flow_id in settings.flow_tables:  # most likely a typo: say so rather than ignore it
        if flow_id not in installed_ids:
            installed = ", ".join(installed_ids) or "none"
            ui.warning(
                f"{settings.source}: [flows.{flow_id}] names no installed flow "
                f"(installed: {installed}); it is ignored."
            )
    env = current_environment(launch_browser=launch_browser)
    options = {} if show_qr else {"qr": False}  # --no-qr
    settings_for = flow_settings(settings, options, warn=ui.warning)
    choice = choose(registry, requested, env, settings_for)
    person = choice.flows[0].needs_person
    if person:
        from exls_core.email import ask_email

        email = ask_email(email, ui)
        route = resolve_route(email, settings, registry, organization=organization, warn=ui.warning)
        ui.message(route.announcement)
        params = route.params
    else:  # a workload: nobody to ask, nothing to route, and no interactive flow after it
        choice = replace(choice, flows=[f for f in choice.flows if not f.needs_person])
        email, params = None, {}
    store = open_store(settings)
    unkept = _unusable_store(store, None if person else choice.flows)
    metadata = fetch_metadata(settings, warn=ui.warning)
    flows, unsupported = fit_provider(choice.flows, metadata, explicit=requested != AUTO)
    servable = servable_flows(registry, metadata)
    warm_up = _import_in_background()

    http = new_session(settings.http_timeout)

    def make_request(flow: Flow) -> FlowRequest:
        nonce = secrets.token_urlsafe(32)  # core's own: the ID token is checked against it

        def check_tokens(response: TokenResponse) -> None:
            validate_response(
                metadata,
                response,
                issuer=settings.issuer,
                client_id=settings.client_id,
                sent_nonce=nonce,
                http_timeout=settings.http_timeout,
            )

        return flow_request(
            settings,
            metadata,
            settings_for(flow.id),
            nonce=nonce,
            ui=ui,
            http=http,
            email=email,
            extra_params=params,
            launch_browser=launch_browser,
            other_flows=tuple(other for other in servable if other != flow.id),
            check_tokens=check_tokens,
        )

    ui.message(choice.why)
    try:
        flow, request, response = run_flows(
            flows,
            make_request,
            ui.message,
            may_fall_back=requested == AUTO,
            unsupported=unsupported,
        )
    finally:
        http.close()
        # An interpreter exiting while a daemon thread imports native modules can abort
        # (seen as SIGABRT when a login failed fast): let the imports finish first.
        warm_up.join(10)
    session = complete_login(
        settings, metadata, request, response, flow_id=flow.id, store=store, keep=not unkept
    )
    if email:
        remember_email(email)
    from exls_core.text import plain_text

    ui.message(f"Logged in as {plain_text(session.display_name)}")  # the provider's words
    note = (
        store.login_note()
        if not unkept
        else (
            f"Nothing was kept: no session store works here ({unkept.rstrip('.')}); "
            f"every exls auth token trades again with the {flow.title}."
        )
    )
    if note:
        ui.message(note)


def _unusable_store(store: Any, workload_flows: list[Any] | None) -> str | None:
    """None when the store can keep a session. Otherwise why not, when every flow to try
    needs no person and can renew without one (a CI job trades again on every use); for
    anything else, the store's error: no point signing in when the tokens cannot be kept."""
    from exls_core.session import StoreError

    try:
        store.check_usable()
    except StoreError as exc:
        if not workload_flows or not all(f.implements("exls_flow_renew") for f in workload_flows):
            raise
        return exc.message
    return None
