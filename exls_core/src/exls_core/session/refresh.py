"""A valid access token, refreshed with the refresh token when it expires within 60 s.

The hot path (token still valid) reads the token cache in the kernel keyring on Linux
(:mod:`exls_core.session.token_cache`), else the store and nothing else: no discovery, no
requests, no jwt; and when the pointer entry carries the hot record (see
:mod:`exls_core.session.store`), it reads that one entry only, then refills the cache.
A refresh happens under the cross-process session lock, after re-reading the store, so
concurrent processes refresh once and a rotated refresh token is never reused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from exls_core.errors import ExlsError
from exls_core.session.model import DEFAULT_LIFETIME, HotRecord, Session, binding
from exls_core.session.selection import open_store
from exls_core.session.store import SessionStore
from exls_core.session.token_cache import REFRESH_MARGIN, for_settings

if TYPE_CHECKING:
    from exls_core.config import Settings
    from exls_core.plugin import TokenResponse

Clock = Callable[[], float]


class NotLoggedIn(ExlsError):
    def __init__(self) -> None:
        super().__init__('You are not logged in. Run "exls login".')


class SessionExpired(ExlsError):
    def __init__(self) -> None:
        super().__init__('Your session has expired. Run "exls login".')


class InvalidGrant(Exception):
    """The provider refused the refresh token: the session is dead."""


def check_matches(session: Session, settings: Settings) -> None:
    """Never send a refresh token to an issuer or client it was not issued for."""
    if (session.issuer, session.client_id) != (settings.issuer, settings.client_id):
        raise ExlsError(
            f"Stored session is for issuer {session.issuer} (client {session.client_id}), "
            f"but exls is configured for {settings.issuer} (client {settings.client_id}).",
            hint='Run "exls login" to log in there, or change EXLS_AUTH_ISSUER / '
            "EXLS_AUTH_CLIENT_ID back.",
        )


def _load(store: SessionStore, settings: Settings) -> Session:
    session = store.load()
    if session is None:
        raise NotLoggedIn()
    check_matches(session, settings)
    return session


def current_session(
    settings: Settings | None = None,
    *,
    store: SessionStore | None = None,
    clock: Clock = time.time,
) -> Session:
    """The stored session with an access token valid for at least REFRESH_MARGIN seconds."""
    if settings is None:
        from exls_core.config import load_settings

        settings = load_settings()
    store = store or open_store(settings)
    session = _load(store, settings)
    if not session.expires_within(REFRESH_MARGIN, clock()):
        return session
    return _refresh_locked(settings, store, clock)


def _refresh_locked(settings: Settings, store: SessionStore, clock: Clock) -> Session:
    from exls_core.session.locking import session_lock

    with session_lock():
        session = _load(store, settings)  # another process may have refreshed meanwhile
        if not session.expires_within(REFRESH_MARGIN, clock()):
            return session
        return _refresh(settings, store, session, clock)


def get_access_token(
    settings: Settings | None = None,
    *,
    store: SessionStore | None = None,
    clock: Clock = time.time,
) -> str:
    """A valid access token for the exalsius API; refreshes it when it expires within 60 s.

    Raises ExlsError (with a message for people) when not logged in or the session expired.
    A valid token costs a kernel keyring read on Linux (the token cache), else one keyring
    read when stored with its hot record (which then refills the cache).
    """
    if settings is None:
        from exls_core.config import load_settings

        settings = load_settings()
    # The cache first: opening the store may mean choosing a keyring backend (slow).
    cache = store.cache if store is not None else for_settings(settings.token_cache)
    if cache is not None:
        token = cache.lookup(binding(settings.issuer, settings.client_id), clock)
        if token is not None:
            return token
    store = store or open_store(settings)
    found = store.load_hot()
    if found is None:
        raise NotLoggedIn()
    if isinstance(found, HotRecord):
        if not found.is_for(settings.issuer, settings.client_id):
            # The full session names the issuer and client it is for, in the error.
            return current_session(settings, store=store, clock=clock).access_token
        if not found.expires_within(REFRESH_MARGIN, clock()):
            store.remember_token(found)
            return found.access_token
    else:
        check_matches(found, settings)
        if not found.expires_within(REFRESH_MARGIN, clock()):
            store.remember_token(found)
            return found.access_token
    return _refresh_locked(settings, store, clock).access_token


def _refresh(settings: Settings, store: SessionStore, session: Session, clock: Clock) -> Session:
    if not session.refresh_token:
        raise SessionExpired()
    from exls_core.discovery import fetch_metadata

    metadata = fetch_metadata(settings)
    try:
        response = post_refresh(
            metadata["token_endpoint"],
            session.refresh_token,
            session.client_id,
            settings.http_timeout,
        )
    except InvalidGrant:
        latest = store.load()
        if latest is not None and latest.refresh_token == session.refresh_token:
            store.clear()  # dead; but a session stored since (a new login) stays
        raise SessionExpired() from None

    claims: dict[str, Any] = {}
    if response.id_token:  # providers often omit it on refresh: then keep the old one
        from exls_core.session.validation import (
            IdTokenRejected,
            JwksCache,
            fetch_jwks,
            validate_id_token,
        )

        jwks = JwksCache(metadata["jwks_uri"], lambda uri: fetch_jwks(uri, settings.http_timeout))
        claims = validate_id_token(
            response.id_token,
            issuer=session.issuer,
            client_id=session.client_id,
            jwks=jwks,
            nonce=None,
        )
        if claims["sub"] != session.subject:
            raise IdTokenRejected("subject changed on refresh")
    email = claims.get("email")
    refreshed = session.with_tokens(
        access_token=response.access_token,
        expires_at=clock() + (response.expires_in or DEFAULT_LIFETIME),
        refresh_token=response.refresh_token or session.refresh_token,
        id_token=response.id_token or session.id_token,
        email=email if isinstance(email, str) and email else session.email,
    )
    store.save(refreshed)
    return refreshed


def post_refresh(
    token_endpoint: str, refresh_token: str, client_id: str, timeout: float
) -> TokenResponse:
    """The refresh_token grant (RFC 6749 6); InvalidGrant when the provider refuses it."""
    import requests

    from exls_core.http import describe_network_error, new_session, read_json
    from exls_core.plugin import TokenResponse

    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
    kept = "Your session was kept; try again."
    try:
        with new_session(timeout) as http:
            response = http.post(
                token_endpoint, data=data, stream=True, headers={"Accept": "application/json"}
            )
            try:
                body = read_json(response, "token endpoint")
            except ExlsError:
                if response.status_code == 200:
                    raise
                body = None
    except requests.RequestException as exc:
        raise ExlsError(
            f"Could not refresh the session: {describe_network_error(exc, token_endpoint)}.",
            hint=kept,
        ) from None
    if response.status_code == 200:
        if not isinstance(body, dict):
            raise ExlsError("Could not refresh the session: the token response is not an object.")
        return TokenResponse.from_json(body)
    error = body.get("error") if isinstance(body, dict) else None
    if error == "invalid_grant":
        raise InvalidGrant()
    detail = f" ({str(error)[:60]})" if error else ""
    raise ExlsError(
        "Could not refresh the session: the identity provider answered "
        f"HTTP {response.status_code}{detail}.",
        hint=kept,
    )
