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
    from exls_core.plugin import FlowRequest
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
