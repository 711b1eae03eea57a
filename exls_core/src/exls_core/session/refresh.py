"""A valid access token, refreshed with the refresh token when it expires within 60 s.

The hot path (token still valid) reads the token cache in the kernel keyring on Linux
(:mod:`exls_core.session.token_cache`), else the store and nothing else: no discovery, no
requests, no jwt; and when the pointer entry carries the hot record (see
:mod:`exls_core.session.store`), it reads that one entry only, then refills the cache.
A refresh happens under the cross-process session lock, after re-reading the store, so
concurrent processes refresh once and a rotated refresh token is never reused. Threads of one
process queue on a lock of their own first (:data:`_THREADS`), so they refresh once too.

An API that refuses a token that still looked valid (``401`` with ``error="invalid_token"``:
revoked, say) calls :func:`renew_access_token` with the refused token: a real refresh at the
provider, unless another thread or process has already replaced that token.

Once the provider answers, the old refresh token may be spent (rotation; a provider with
reuse detection revokes the whole grant when it sees it again). So the new refresh token is
stored first, on its own, before anything else can fail: validating the refreshed ID token
(which may fetch the JWKS) and storing the new access token. What a refreshed ID token that
is rejected does to the stored session:

* it names another identity than the login's (``sub``, and ``iss``/``aud``/``azp`` where the
  login had an ID token; OpenID Connect Core 12.2): the grant now stands for someone else,
  so the session is removed and the user must log in again;
* it cannot be verified (signature, expiry, issuer, ...) or the keys cannot be fetched: the
  session is kept with the new refresh token and its old, expired access token, so the next
  ``exls auth token`` refreshes and checks again; nothing from that answer is used.

If even the first store fails, the new refresh token is lost (nothing can keep it) and the
error says so; the next refresh then ends the session, as the provider would anyway.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from exls_core.errors import ExlsError
from exls_core.session.model import HotRecord, Session, binding, expiry
from exls_core.session.selection import open_store
from exls_core.session.store import SessionStore, StoreError
from exls_core.session.token_cache import REFRESH_MARGIN, for_settings

if TYPE_CHECKING:
    from exls_core.config import Settings
    from exls_core.plugin import TokenResponse

KEPT = "Your session was kept; try again."
Clock = Callable[[], float]

# One refresh at a time in this process. The session lock keeps processes apart, but how a file
# lock treats two threads of one process depends on the platform and the lock (POSIX record
# locks belong to the process; msvcrt and flock to a file handle), so threads queue here first.
_THREADS = threading.Lock()


class NotLoggedIn(ExlsError):
    def __init__(self) -> None:
        import os

        from exls_core.session import agent_protocol as proto

        if os.environ.get(proto.SOCKET_ENV, "").strip():  # a forward that no longer answers
            super().__init__(proto.forward_gone(proto.socket_path()))
            return
        super().__init__('You are not logged in. Run "exls login".')


class SessionExpired(ExlsError):
    def __init__(self) -> None:
        super().__init__('Your session has expired. Run "exls login".')


class InvalidGrant(Exception):
    """The provider refused the refresh token: the session is dead."""


class UnusableAnswer(ExlsError):
    """A successful refresh answer exls cannot use; ``refresh_token`` is the rotated one it
    carried (the provider may have spent the old one already), to be kept all the same."""

    def __init__(self, message: str, refresh_token: str | None) -> None:
        super().__init__(message, hint=KEPT)
        self.refresh_token = refresh_token


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
    return _refresh_locked(settings, store, clock, session.access_token)


def _refresh_locked(
    settings: Settings, store: SessionStore, clock: Clock, seen: str, *, rejected: bool = False
) -> Session:
    """Refresh the session whose token was ``seen`` before waiting for the locks, unless
    another thread or process replaced that token meanwhile (a short-lived replacement, one
    within the margin already, is used too: it is the answer to this very expiry).
    rejected: an API refused ``seen``; refresh it even when it looks valid."""
    if not store.holds_refresh_token:
        # The exls agent renews, under its own locks (forced when the API refused ``seen``).
        return store.renewed(settings, rejected=seen if rejected else None)
    from exls_core.session.locking import session_lock

    with _THREADS, session_lock():
        session = _load(store, settings)
        now = clock()
        if session.access_token != seen and not session.expires_within(0, now):
            return session
        if not rejected and not session.expires_within(REFRESH_MARGIN, now):
            return session
        return _refresh(settings, store, session, clock, force=rejected)


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
    return get_token_and_expiry(settings, store=store, clock=clock)[0]


def get_token_and_expiry(
    settings: Settings | None = None,
    *,
    store: SessionStore | None = None,
    clock: Clock = time.time,
) -> tuple[str, float]:
    """:func:`get_access_token` with the token's expiry (seconds since the epoch)."""
    if settings is None:
        from exls_core.config import load_settings

        settings = load_settings()
    # The cache first: opening the store may mean choosing a keyring backend (slow).
    cache = store.cache if store is not None else for_settings(settings.token_cache)
    if cache is not None:
        cached = cache.lookup(binding(settings.issuer, settings.client_id), clock)
        if cached is not None:
            return cached
    store = store or open_store(settings)
    try:
        found = store.load_hot()
    except StoreError:
        # No store works here: a flow that needs nobody may trade again (see flow_hooks).
        from exls_core.session.flow_hooks import stateless_token

        traded = stateless_token(settings)
        if traded is None:
            raise
        return traded
    if found is None:
        raise NotLoggedIn()
    if isinstance(found, HotRecord):
        if not found.is_for(settings.issuer, settings.client_id):
            # The full session names the issuer and client it is for, in the error.
            found = current_session(settings, store=store, clock=clock)
            return found.access_token, found.expires_at
    else:
        check_matches(found, settings)
    if not found.expires_within(REFRESH_MARGIN, clock()):
        store.remember_token(found)
        return found.access_token, found.expires_at
    session = _refresh_locked(settings, store, clock, found.access_token)
    return session.access_token, session.expires_at


def renew_access_token(
    rejected: str,
    settings: Settings | None = None,
    *,
    store: SessionStore | None = None,
    clock: Clock = time.time,
) -> tuple[str, float]:
    """After an API refused ``rejected`` (401 invalid_token): a token from a real refresh at
    the provider, or the one another thread or process got meanwhile, and its expiry.

    SessionExpired when the session cannot be refreshed (no refresh token, or a dead one)."""
    if settings is None:
        from exls_core.config import load_settings

        settings = load_settings()
    store = store or open_store(settings)
    session = _refresh_locked(settings, store, clock, rejected, rejected=True)
    return session.access_token, session.expires_at


def _refresh(
    settings: Settings, store: SessionStore, session: Session, clock: Clock, force: bool = False
) -> Session:
    """force: the API refused the current token; a session without a refresh token is over."""
    if not session.refresh_token:
        from exls_core.session.renew import renew

        renewed = renew(settings, store, session, clock)  # the flow may know how
        if renewed is not None:
            return renewed
        # Some providers issue no refresh token: use the access token while it lasts.
        if not force and not session.expires_within(0, clock()):
            return session
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
    except UnusableAnswer as exc:
        if exc.refresh_token and exc.refresh_token != session.refresh_token:
            _keep_rotated(store, session, exc.refresh_token)
        raise
    except InvalidGrant:
        latest = store.load()
        if latest is not None and latest.refresh_token == session.refresh_token:
            store.clear()  # dead; but a session stored since (a new login) stays
        raise SessionExpired() from None

    if response.refresh_token and response.refresh_token != session.refresh_token:
        session = _keep_rotated(store, session, response.refresh_token)
    claims = _refreshed_claims(settings, store, session, metadata, response)
    email = claims.get("email")
    refreshed = session.with_tokens(
        access_token=response.access_token,
        expires_at=expiry(clock(), response.expires_in),
        refresh_token=response.refresh_token or session.refresh_token,
        id_token=response.id_token or session.id_token,
        email=email if isinstance(email, str) and email else session.email,
    )
    store.save(refreshed)
    return refreshed


def _keep_rotated(store: SessionStore, session: Session, refresh_token: str) -> Session:
    """Store the rotated refresh token alone, before anything else can fail."""
    kept = dataclasses.replace(session, refresh_token=refresh_token)
    try:
        store.save(kept)
    except StoreError as exc:
        raise StoreError(
            exc.message,
            hint="The identity provider has already replaced your refresh token, so the "
            'stored one is spent: run "exls login" once the keyring works.',
        ) from None
    return kept


def _refreshed_claims(
    settings: Settings,
    store: SessionStore,
    session: Session,
    metadata: dict[str, Any],
    response: TokenResponse,
) -> dict[str, Any]:
    """The refreshed ID token's claims ({} without one; providers often omit it).

    Raises when it is rejected: IdentityChanged after removing the session, anything else
    with the session (already holding the new refresh token) kept."""
    if not response.id_token:
        return {}
    from exls_core.session.validation import (
        IdentityChanged,
        JwksCache,
        check_same_identity,
        fetch_jwks,
        validate_id_token,
    )

    jwks = JwksCache(metadata["jwks_uri"], lambda uri: fetch_jwks(uri, settings.http_timeout))
    try:
        claims = validate_id_token(
            response.id_token,
            issuer=session.issuer,
            client_id=session.client_id,
            jwks=jwks,
            nonce=None,  # a refresh sends none; the claim may hold the login's (OIDC Core 12.2)
        )
        check_same_identity(claims, session)
    except IdentityChanged:
        store.clear()  # we hold the session lock: this is the session just refreshed
        raise
    except ExlsError as exc:
        exc.hint = exc.hint or KEPT
        raise
    return claims


def post_refresh(
    token_endpoint: str, refresh_token: str, client_id: str, timeout: float
) -> TokenResponse:
    """The refresh_token grant (RFC 6749 6); InvalidGrant when the provider refuses it."""
    import requests

    from exls_core.http import describe_network_error, new_session, read_json
    from exls_core.plugin import NonceCheck, TokenResponse
    from exls_core.text import plain_text

    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
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
            hint=KEPT,
        ) from None
    if response.status_code == 200:
        if not isinstance(body, dict):
            raise ExlsError("Could not refresh the session: the token response is not an object.")
        try:
            # Core validates a refreshed ID token itself (no nonce in a refresh, see _refresh).
            return TokenResponse.from_json(body, nonce_check=NonceCheck.NOT_IN_PROTOCOL)
        except ExlsError as exc:
            rotated = body.get("refresh_token")
            raise UnusableAnswer(
                exc.message,
                rotated if isinstance(rotated, str) else None,
            ) from None
    error = body.get("error") if isinstance(body, dict) else None
    if error == "invalid_grant":
        raise InvalidGrant()
    detail = f" ({plain_text(str(error), 60)})" if error else ""
    raise ExlsError(
        "Could not refresh the session: the identity provider answered "
        f"HTTP {response.status_code}{detail}.",
        hint=KEPT,
    )
