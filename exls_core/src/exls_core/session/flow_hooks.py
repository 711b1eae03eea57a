"""Calling the flow that made a session, after the login: renewal and revocation hooks.

Only through the contract: core asks the registry for the session's flow (by id) and whether
it implements the hook; a flow that is gone or does not implement it leaves core's own rule.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from exls_core.config import Settings
    from exls_core.plugin import FlowRequest, TokenResponse
    from exls_core.registry import Flow
    from exls_core.session.model import Session


def session_flow(session: Session, hook: str, ui: Any) -> Flow | None:
    """The installed flow that made ``session``, if it implements ``hook``."""
    from exls_core.registry import load_registry

    flow = load_registry(warn=ui.warning).flows.get(session.flow)
    return flow if flow is not None and flow.implements(hook) else None


def hook_request(
    settings: Settings, metadata: Mapping[str, Any], flow: Flow, *, http: Any, ui: Any
) -> FlowRequest:
    """The request a hook gets: built as for a login, with no person (no email, no route)."""
    from exls_core.resolver import flow_request, flow_settings

    own = flow_settings(settings, warn=ui.warning)(flow.id)
    return flow_request(settings, metadata, own, nonce=secrets.token_urlsafe(32), ui=ui, http=http)


def stateless_token(settings: Settings) -> tuple[str, float] | None:
    """An access token and its expiry when no store works here, from the best flow available
    that needs no person and can renew (a CI job): traded anew on every call, validated, kept
    nowhere. None when there is no such flow (the store's error stands)."""
    import time

    from exls_core.errors import ExlsError
    from exls_core.registry import load_registry
    from exls_core.resolver import current_environment, flow_settings, rank
    from exls_core.session.model import expiry
    from exls_core.ui import TerminalUI

    ui = TerminalUI()
    try:
        registry = load_registry(warn=ui.warning)
        ranked = rank(registry, current_environment(), flow_settings(settings, warn=ui.warning))
    except ExlsError:
        return None  # no flow to ask (e.g. a cache directory of another user): the store's error
    flow = next(
        (
            r.flow
            for r in ranked
            if r.available and not r.flow.needs_person and r.flow.implements("exls_flow_renew")
        ),
        None,
    )
    if flow is None:
        return None
    response, _ = renewed_response(settings, flow, ui)
    return response.access_token, expiry(time.time(), response.expires_in)


def renewed_response(
    settings: Settings, flow: Flow, ui: Any
) -> tuple[TokenResponse, dict[str, Any]]:
    """The flow's ``exls_flow_renew`` answer, validated as at login, and its claims."""
    from exls_core.discovery import fetch_metadata
    from exls_core.http import new_session
    from exls_core.session.login import validate_response

    metadata = fetch_metadata(settings)
    with new_session(settings.http_timeout) as http:
        request = hook_request(settings, metadata, flow, http=http, ui=ui)
        response = flow.renew(request)
    claims = validate_response(
        metadata,
        response,
        issuer=settings.issuer,
        client_id=settings.client_id,
        sent_nonce=request.nonce,
        http_timeout=settings.http_timeout,
    )
    return response, claims
