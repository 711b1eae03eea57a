"""Refresh: only when needed, rotation stored, invalid_grant and network failures handled."""

from __future__ import annotations

import dataclasses
import time

import pytest
from session_testkit import CLIENT_ID, FakeIdP, MemoryKeyring, claims_for, make_session, rsa_key

from exls_core.config import Settings
from exls_core.discovery import fetch_metadata
from exls_core.errors import ExlsError
from exls_core.session import (
    IdTokenRejected,
    NotLoggedIn,
    SessionExpired,
    SessionStore,
    current_session,
    get_access_token,
)
from exls_core.session.model import Session

NOW = 1_700_000_000.0


def stored(idp: FakeIdP, expires_in: float, **overrides: object) -> Session:
    session = make_session(
        idp.issuer, **{"expires_at": NOW + expires_in, "id_token": "old-id-token", **overrides}
    )
    SessionStore().save(session)
    return session


def token_at(settings: Settings, now: float = NOW) -> Session:
    return current_session(settings, store=SessionStore(), clock=lambda: now)


def test_a_valid_token_is_returned_without_any_network(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP
) -> None:
    stored(idp, expires_in=61)
    assert token_at(settings).access_token == "at-initial"
    assert (idp.discovery_hits, idp.refreshes) == (0, 0)


def test_a_token_expiring_within_60_s_is_refreshed_and_the_rotation_stored(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP
) -> None:
    old = stored(idp, expires_in=59)
    session = token_at(settings)
    assert (session.access_token, session.refresh_token) == ("at-1", "rt-1")
    assert session.expires_at == NOW + 3600
    assert session.id_token == "old-id-token"  # none came with the refresh: kept
    assert (session.subject, session.email, session.flow) == (old.subject, old.email, old.flow)
    assert SessionStore().load() == session
    assert idp.refreshes == 1
    assert token_at(settings).access_token == "at-1"  # now valid: no second refresh
    assert idp.refreshes == 1


def test_a_provider_that_does_not_rotate_keeps_the_refresh_token(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP
) -> None:
    idp.rotate = False
    stored(idp, expires_in=-500)
    session = token_at(settings)
    assert (session.access_token, session.refresh_token) == ("at-1", "rt-0")


def test_a_new_id_token_on_refresh_is_validated_and_kept(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP
) -> None:
    new_id_token = idp.key.sign(claims_for(idp.issuer, nonce=None, email="alice@new.example"))
    idp.id_token_on_refresh = lambda _: new_id_token
    stored(idp, expires_in=0)
    session = token_at(settings)
    assert (session.id_token, session.email) == (new_id_token, "alice@new.example")


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda idp: rsa_key("k1").sign(claims_for(idp.issuer)), "signature verification"),
        (lambda idp: idp.key.sign(claims_for(idp.issuer, aud="x")), "audience mismatch"),
    ],
)
def test_an_unverifiable_id_token_on_refresh_keeps_the_session_and_the_new_refresh_token(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP, make: object, reason: str
) -> None:
    idp.id_token_on_refresh = make  # type: ignore[assignment]
    old = stored(idp, expires_in=0)
    with pytest.raises(IdTokenRejected, match=reason) as caught:
        token_at(settings)
    assert caught.value.hint == "Your session was kept; try again."
    kept = SessionStore().load()
    assert kept is not None and kept.refresh_token == "rt-1"  # the old one is spent
    assert kept == dataclasses.replace(old, refresh_token="rt-1")  # nothing else changed
    idp.id_token_on_refresh = lambda idp: None  # the provider is fixed: the next works
    assert token_at(settings).access_token == "at-2"


def test_an_id_token_of_another_subject_on_refresh_ends_the_session(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP
) -> None:
    idp.id_token_on_refresh = lambda idp: idp.key.sign(claims_for(idp.issuer, sub="mallory"))
    stored(idp, expires_in=0)
    with pytest.raises(IdTokenRejected, match="subject changed on refresh") as caught:
        token_at(settings)
    assert caught.value.hint is not None and "session was removed" in caught.value.hint
    assert memory_keyring.entries == {}


def test_invalid_grant_ends_the_session(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP
) -> None:
    stored(idp, expires_in=0, refresh_token="rt-revoked")
    with pytest.raises(SessionExpired) as caught:
        token_at(settings)
    assert caught.value.message == 'Your session has expired. Run "exls login".'
    assert memory_keyring.entries == {}


def test_invalid_grant_keeps_a_session_stored_meanwhile(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP
) -> None:
    stored(idp, expires_in=0, refresh_token="rt-revoked")
    newer = make_session(idp.issuer, refresh_token="rt-from-a-new-login")
    idp.on_refresh = lambda token: SessionStore().save(newer)  # a login landed in between
    with pytest.raises(SessionExpired):
        token_at(settings)
    assert SessionStore().load() == newer


def test_a_network_failure_keeps_the_session(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP
) -> None:
    fetch_metadata(settings)  # discovery is cached, the provider then goes away
    old = stored(idp, expires_in=0)
    idp.stop()
    with pytest.raises(ExlsError) as caught:
        token_at(settings)
    assert caught.value.message.startswith("Could not refresh the session: cannot connect to")
    assert caught.value.hint == "Your session was kept; try again."
    assert SessionStore().load() == old


def test_a_server_error_keeps_the_session(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP
) -> None:
    idp.token_status = 503
    old = stored(idp, expires_in=0)
    with pytest.raises(ExlsError) as caught:
        token_at(settings)
    assert caught.value.message == (
        "Could not refresh the session: the identity provider answered HTTP 503 (server_error)."
    )
    assert SessionStore().load() == old


def test_expired_without_a_refresh_token(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP
) -> None:
    stored(idp, expires_in=0, refresh_token=None)
    with pytest.raises(SessionExpired):
        token_at(settings)
    assert idp.refreshes == 0


def test_without_a_refresh_token_the_token_is_used_until_it_expires(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP
) -> None:
    session = stored(idp, expires_in=30, refresh_token=None)  # within the 60 s margin
    assert token_at(settings) == session
    assert get_access_token(settings, store=SessionStore(), clock=lambda: NOW + 29) == (
        session.access_token
    )
    with pytest.raises(SessionExpired):
        token_at(settings, now=NOW + 30)
    assert idp.refreshes == 0


def test_not_logged_in(memory_keyring: MemoryKeyring, settings: Settings) -> None:
    with pytest.raises(NotLoggedIn) as caught:
        token_at(settings)
    assert caught.value.message == 'You are not logged in. Run "exls login".'


@pytest.mark.parametrize("change", [{"issuer": "https://other.example/"}, {"client_id": "other"}])
def test_a_session_for_another_issuer_or_client_is_never_refreshed(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP, change: dict[str, str]
) -> None:
    stored(idp, expires_in=0)
    configured = Settings(**{"issuer": idp.issuer, "client_id": CLIENT_ID, **change})
    with pytest.raises(ExlsError) as caught:
        token_at(configured)
    assert caught.value.message.startswith(f"Stored session is for issuer {idp.issuer} (client")
    assert "exls login" in (caught.value.hint or "")
    assert (idp.discovery_hits, idp.refreshes) == (0, 0)


def test_get_access_token_reads_the_settings_itself(
    memory_keyring: MemoryKeyring, idp: FakeIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXLS_AUTH_ISSUER", idp.issuer)
    monkeypatch.setenv("EXLS_AUTH_CLIENT_ID", CLIENT_ID)
    SessionStore().save(make_session(idp.issuer, expires_at=time.time() + 30))
    assert get_access_token() == "at-1"
    assert get_access_token() == "at-1"
    assert idp.refreshes == 1


# --- get_access_token: the `exls auth token` path (one keyring read with the hot record)

TOKEN_SIZES = {"hot record": "at-initial", "too large for the pointer": "L" * 2000}


def token_now(settings: Settings, now: float = NOW) -> str:
    return get_access_token(settings, store=SessionStore(), clock=lambda: now)


@pytest.mark.parametrize("access_token", TOKEN_SIZES.values(), ids=TOKEN_SIZES.keys())
def test_get_access_token_reads_one_entry_when_the_pointer_has_the_token(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP, access_token: str
) -> None:
    session = stored(idp, expires_in=61, access_token=access_token)
    reads = memory_keyring.reads
    assert token_now(settings) == access_token
    chunk_count = -(-len(session.to_json()) // 1000)
    hot = len(access_token) < 100
    assert memory_keyring.reads - reads == (1 if hot else 1 + chunk_count)  # never twice
    assert (idp.discovery_hits, idp.refreshes) == (0, 0)


@pytest.mark.parametrize("access_token", TOKEN_SIZES.values(), ids=TOKEN_SIZES.keys())
def test_get_access_token_refreshes_like_current_session(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP, access_token: str
) -> None:
    stored(idp, expires_in=59, access_token=access_token)
    assert token_now(settings) == "at-1"
    refreshed = SessionStore().load()
    assert refreshed is not None and refreshed.refresh_token == "rt-1"
    reads = memory_keyring.reads
    assert token_now(settings) == "at-1"  # valid now: no second refresh, one read
    assert (idp.refreshes, memory_keyring.reads - reads) == (1, 1)


@pytest.mark.parametrize("access_token", TOKEN_SIZES.values(), ids=TOKEN_SIZES.keys())
@pytest.mark.parametrize("change", [{"issuer": "https://other.example/"}, {"client_id": "other"}])
def test_get_access_token_for_another_issuer_or_client(
    memory_keyring: MemoryKeyring,
    settings: Settings,
    idp: FakeIdP,
    change: dict[str, str],
    access_token: str,
) -> None:
    stored(idp, expires_in=3600, access_token=access_token)
    configured = Settings(**{"issuer": idp.issuer, "client_id": CLIENT_ID, **change})
    with pytest.raises(ExlsError) as caught:
        token_now(configured)
    assert caught.value.message == (
        f"Stored session is for issuer {idp.issuer} (client {CLIENT_ID}), but exls is "
        f"configured for {configured.issuer} (client {configured.client_id})."
    )
    assert (idp.discovery_hits, idp.refreshes) == (0, 0)


def test_get_access_token_when_not_logged_in_reads_once(
    memory_keyring: MemoryKeyring, settings: Settings
) -> None:
    with pytest.raises(NotLoggedIn):
        token_now(settings)
    assert memory_keyring.reads == 1


@pytest.mark.parametrize("access_token", TOKEN_SIZES.values(), ids=TOKEN_SIZES.keys())
def test_get_access_token_when_the_refresh_token_is_dead(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP, access_token: str
) -> None:
    stored(idp, expires_in=0, refresh_token="rt-revoked", access_token=access_token)
    with pytest.raises(SessionExpired):
        token_now(settings)
    assert memory_keyring.entries == {}
    stored(idp, expires_in=0, refresh_token=None, access_token=access_token)
    with pytest.raises(SessionExpired):
        token_now(settings)


def test_a_nan_expiry_counts_as_expired(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP
) -> None:
    stored(idp, expires_in=float("nan"))
    assert token_now(settings) == "at-1"
    assert idp.refreshes == 1
