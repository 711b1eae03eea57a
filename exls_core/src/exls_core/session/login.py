"""The end of ``exls login``: validate the flow's token response, then store the session."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from exls_core.session.model import PERSON, WORKLOAD, Session, expiry
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


def expected_nonce(response: TokenResponse, sent: str) -> str | None:
    """The nonce the ID token must carry: the one core sent, unless the flow declared that
    its protocol has none. Anything but that explicit declaration means the check runs."""
    from exls_core.plugin import NonceCheck

    return None if response.nonce_check is NonceCheck.NOT_IN_PROTOCOL else sent


def validate_response(
    metadata: Mapping[str, Any],
    response: TokenResponse,
    *,
    issuer: str,
    client_id: str,
    sent_nonce: str,
    http_timeout: float,
    jwks: JwksCache | None = None,
) -> dict[str, Any]:
    """The ID token's verified claims; IdTokenRejected naming the failed check otherwise.

    ``sent_nonce`` is ``request.nonce``, which core generated: never a value from the flow.
    Without an ID token from a flow without a nonce (the device grant): the userinfo claims.
    """
    if not response.id_token and response.workload is not None:
        # A workload, as the flow names it: no person to identify (an ID token would be checked).
        return {"sub": response.workload.subject, "iss": response.workload.issuer}
    if not response.id_token:
        from exls_core.session import userinfo

        if userinfo.may_identify(response):
            return userinfo.fetch_userinfo(metadata, response.access_token, http_timeout)
        # openid is always requested, and the code flow must bind its answer to the nonce.
        raise IdTokenRejected(
            "the token response has none, although the openid scope was requested"
        )
    if jwks is None:
        jwks = JwksCache(metadata["jwks_uri"], lambda uri: fetch_jwks(uri, http_timeout))
    return validate_id_token(
        response.id_token,
        issuer=issuer,
        client_id=client_id,
        jwks=jwks,
        nonce=expected_nonce(response, sent_nonce),
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
    keep: bool = True,
) -> Session:
    """Validate the ID token (or ask userinfo, see validate_response), then replace the
    stored session; nothing is stored on failure, nor with ``keep=False`` (no store works
    here, and the flow can trade again on every use)."""
    claims = validate_response(
        metadata,
        response,
        issuer=request.issuer,
        client_id=request.client_id,
        sent_nonce=request.nonce,
        http_timeout=request.http_timeout,
        jwks=jwks,
    )
    now = clock()
    email = claims.get("email")
    workload = response.workload
    session = Session(
        issuer=request.issuer,
        client_id=request.client_id,
        access_token=response.access_token,
        expires_at=expiry(now, response.expires_in),
        refresh_token=response.refresh_token,
        id_token=response.id_token,
        scopes=tuple(response.scope.split()) if response.scope else tuple(request.scopes),
        flow=flow_id,
        subject=workload.subject if workload else claims["sub"],
        email=None if workload else email if isinstance(email, str) and email else None,
        logged_in_at=now,
        audience=request.audience,
        kind=WORKLOAD if workload else PERSON,
        identity_issuer=workload.issuer if workload else None,
    )
    if not keep:
        return session
    from exls_core.session.locking import session_lock

    with session_lock():
        (store or open_store(settings)).save(session)
    return session
