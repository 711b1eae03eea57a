"""Logout: revoke the tokens at the provider (RFC 7009), then remove every stored entry, in
every store exls can reach here."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from exls_core.errors import ExlsError
from exls_core.session.model import Session
from exls_core.session.store import CorruptedSession, SessionStore, StoreError

if TYPE_CHECKING:
    from exls_core.config import Settings

REVOKE_TIMEOUT = 5.0  # logout must not wait long for a provider that is down


@dataclass(frozen=True)
class LogoutResult:
    was_logged_in: bool
    revocation_problem: str | None  # why the provider did not confirm the revocation
    # Stores other than the one in use where a session was found and removed (their names).
    also_removed_from: tuple[str, ...] = ()


def _error_code(response: Any) -> str | None:
    from exls_core.http import read_json

    try:
        body = read_json(response, "revocation endpoint")
    except ExlsError:
        return None
    from exls_core.text import plain_text

    error = body.get("error") if isinstance(body, dict) else None
    return plain_text(str(error), 60) if error else None


def revoke_tokens(session: Session, metadata: Mapping[str, Any], timeout: float) -> str | None:
    """Revoke the refresh token, then the access token; None when done, else the problem."""
    endpoint = metadata.get("revocation_endpoint")
    if not isinstance(endpoint, str):
        return None  # the provider offers no revocation: removing the tokens is all we can do
    import requests

    from exls_core.http import describe_network_error, new_session

    tokens = [(session.refresh_token, "refresh_token"), (session.access_token, "access_token")]
    with new_session(timeout) as http:
        for token, hint in tokens:
            if not token:
                continue
            data = {"token": token, "token_type_hint": hint, "client_id": session.client_id}
            try:
                response = http.post(endpoint, data=data, stream=True)
                if response.status_code == 200:
                    continue
                error = _error_code(response)
            except requests.RequestException as exc:  # the error body too may come too slowly
                return describe_network_error(exc, endpoint)
            if hint == "access_token" and error == "unsupported_token_type":
                continue  # many providers revoke only refresh tokens (RFC 7009 2.2.1)
            return f"{endpoint} answered HTTP {response.status_code}" + (
                f" ({error})" if error else ""
            )
    return None


def _revoke(settings: Settings, session: Session) -> str | None:
    from exls_core.discovery import fetch_metadata

    # The session's own issuer and client: the configuration may have changed since the login.
    timeout = min(settings.http_timeout, REVOKE_TIMEOUT)
    where = dataclasses.replace(
        settings, issuer=session.issuer, client_id=session.client_id, http_timeout=timeout
    )
    try:
        metadata = fetch_metadata(where)
        if _revoked_by_flow(where, session, metadata):
            return None
        return revoke_tokens(session, metadata, timeout)
    except ExlsError as exc:
        return exc.message
    except Exception as exc:  # whatever the provider sent: logout still removes the session
        return f"unexpected {type(exc).__name__} while revoking"


def _remove(settings: Settings, store: SessionStore) -> tuple[bool, str | None]:
    """Revoke what the store holds, then remove every entry whatever the revocation said:
    (whether it held a session, the revocation problem)."""
    if not store.holds_refresh_token:
        return store.end(settings)  # the exls agent revokes and forgets, then exits
    try:
        session = store.load()
    except CorruptedSession:
        session = None  # nothing usable to revoke; the entries still go
    problem = _revoke(settings, session) if session is not None else None
    existed = store.clear()
    return existed or session is not None, problem


def _revoked_by_flow(settings: Settings, session: Session, metadata: Mapping[str, Any]) -> bool:
    """True when the session's flow revoked (or has nothing to revoke): exls_flow_revoke.
    False when core's own RFC 7009 revocation should run (the flow does not say how)."""
    from exls_core.http import new_session
    from exls_core.session.flow_hooks import hook_request, session_flow
    from exls_core.ui import TerminalUI

    ui = TerminalUI()
    flow = session_flow(session, "exls_flow_revoke", ui)
    if flow is None:
        return False
    with new_session(settings.http_timeout) as http:
        request = hook_request(settings, metadata, flow, http=http, ui=ui)
        flow.revoke(request, session.access_token)  # False: nothing revocable, nothing to say
    return True


def logout(settings: Settings, *, store: SessionStore | None = None) -> LogoutResult:
    """Revoke and remove the session in the store in use and in every other store exls can
    reach here (given a store: that one only)."""
    from exls_core.session.locking import session_lock
    from exls_core.session.selection import open_store, other_stores

    chosen = store or open_store(settings)
    others = other_stores(settings, chosen) if store is None else []
    results: dict[int, tuple[bool, str | None]] = {}

    def remove(each: SessionStore) -> None:
        removed = _remove(settings, each) if each is chosen else _remove_other(settings, each)
        results[id(each)] = removed

    # The exls agent takes the session lock itself, in its own process: ask it outside.
    for each in (chosen, *others):
        if not each.holds_refresh_token:
            remove(each)
    with session_lock():
        for each in (chosen, *others):
            if each.holds_refresh_token:
                remove(each)
    was_logged_in, problem = results[id(chosen)]
    also: list[str] = []
    for other in others:
        found, other_problem = results[id(other)]
        if found:
            also.append(other.backend_name())
            problem = problem or other_problem
    return LogoutResult(was_logged_in or bool(also), problem, tuple(also))


def _remove_other(settings: Settings, store: SessionStore) -> tuple[bool, str | None]:
    try:
        return _remove(settings, store)
    except StoreError:
        return False, None  # not usable now: the store in use decided the answer
