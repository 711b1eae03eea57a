"""Renewing a session that has no refresh token, through the flow that made it.

A flow may say how (``exls_flow_renew`` in the contract): the workload flow trades a fresh CI
token. Core calls it from the refresh path, holding the session lock after re-reading the
store (so ten parallel ``exls auth token`` calls renew once), validates the answer as at
login, and keeps the session only if it names the same identity.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

from exls_core.session.model import Session, expiry
from exls_core.session.validation import IdentityChanged

if TYPE_CHECKING:
    from exls_core.config import Settings
    from exls_core.plugin import TokenResponse
    from exls_core.session.store import SessionStore


def renew(
    settings: Settings, store: SessionStore, session: Session, clock: Any = time.time
) -> Session | None:
    """The renewed session (stored), or None when the session's flow cannot renew."""
    from exls_core.session.flow_hooks import renewed_response, session_flow
    from exls_core.ui import TerminalUI

    ui = TerminalUI()
    flow = session_flow(session, "exls_flow_renew", ui)
    if flow is None:
        return None
    # The settings name the session's issuer and client (refresh.check_matches saw to it).
    response, claims = renewed_response(settings, flow, ui)
    _check_same(session, response, claims, store)
    renewed = dataclasses.replace(
        session,
        access_token=response.access_token,
        expires_at=expiry(clock(), response.expires_in),
        refresh_token=response.refresh_token,
        id_token=response.id_token or session.id_token,
        scopes=tuple(response.scope.split()) if response.scope else session.scopes,
    )
    store.save(renewed)
    return renewed


def _check_same(
    session: Session, response: TokenResponse, claims: dict[str, Any], store: SessionStore
) -> None:
    """A renewal must name the login's identity; otherwise the session is removed."""
    workload = response.workload
    if session.is_workload:
        if workload is None or workload.subject != session.subject:
            store.clear()
            raise IdentityChanged("workload subject")
        if workload.issuer != session.identity_issuer:
            store.clear()
            raise IdentityChanged("workload issuer")
    elif workload is not None or claims.get("sub") != session.subject:
        store.clear()
        raise IdentityChanged("subject")
