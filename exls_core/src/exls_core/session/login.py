"""The end of ``exls login``: validate the flow's token response, then store the session."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from exls_core.session.model import DEFAULT_LIFETIME, Session
from exls_core.session.selection import open_store
from exls_core.session.store import SessionStore
from exls_core.session.validation import (
    IdTokenRejected,
    JwksCache,
    fetch_jwks,
    validate_id_token,
)

if TYPE_CHECKING:
    from exls_core.config import Settings
    from exls_core.plugin import FlowRequest, TokenResponse


def prepare_imports() -> None:
    """Import what complete_login needs (PyJWT, cryptography, filelock) ahead of time."""
    import filelock  # noqa: F401
    import jwt.algorithms  # noqa: F401  (pulls in cryptography)


def validate_response(
    metadata: Mapping[str, Any],
    response: TokenResponse,
    *,
    issuer: str,
    client_id: str,
    http_timeout: float,
    jwks: JwksCache | None = None,
) -> dict[str, Any]:
    """The ID token's verified claims; IdTokenRejected naming the failed check otherwise."""
    if not response.id_token:
        # openid is always requested: a provider that drops the ID token is misconfigured.
        raise IdTokenRejected(
            "the token response has none, although the openid scope was requested"
        )
    if jwks is None:
        jwks = JwksCache(metadata["jwks_uri"], lambda uri: fetch_jwks(uri, http_timeout))
    return validate_id_token(
        response.id_token, issuer=issuer, client_id=client_id, jwks=jwks, nonce=response.nonce
    )


def complete_login(
    settings: Settings,
    metadata: Mapping[str, Any],
    request: FlowRequest,
    response: TokenResponse,
    *,
    flow_id: str,
    store: SessionStore | None = None,
    jwks: JwksCache | None = None,
    clock: Any = time.time,
) -> Session:
    """Validate the ID token, then replace the stored session; nothing is stored on failure."""
    claims = validate_response(
        metadata,
        response,
        issuer=request.issuer,
        client_id=request.client_id,
        http_timeout=request.http_timeout,
        jwks=jwks,
    )
    assert response.id_token is not None  # validate_response refuses a response without one
    now = clock()
    email = claims.get("email")
    session = Session(
        issuer=request.issuer,
        client_id=request.client_id,
        access_token=response.access_token,
        expires_at=now + (response.expires_in or DEFAULT_LIFETIME),
        refresh_token=response.refresh_token,
        id_token=response.id_token,
        scopes=tuple(response.scope.split()) if response.scope else tuple(request.scopes),
        flow=flow_id,
        subject=claims["sub"],
        email=email if isinstance(email, str) and email else None,
        logged_in_at=now,
    )
    from exls_core.session.locking import session_lock

    with session_lock():
        (store or open_store(settings)).save(session)
    return session
