"""complete_login: validate first, store second, and report who logged in."""

from __future__ import annotations

import pytest
from session_testkit import CLIENT_ID, FakeIdP, MemoryKeyring, claims_for, make_session, rsa_key

from exls_core.config import Settings
from exls_core.plugin import FlowRequest, NonceCheck, TokenResponse
from exls_core.session import IdTokenRejected, SessionStore, complete_login
from exls_core.ui import TerminalUI

NONCE = "n-0S6_WzA2Mj"


def request_for(idp: FakeIdP) -> FlowRequest:
    return FlowRequest(
        issuer=idp.issuer,
        metadata=idp.discovery(),
        client_id=CLIENT_ID,
        scopes=("openid", "profile", "email", "offline_access"),
        nonce=NONCE,
        ui=TerminalUI(),
        http=None,  # type: ignore[arg-type]  (core fetches the keys with its own session)
    )


def response_for(
    id_token: str | None, nonce_check: NonceCheck = NonceCheck.REQUIRED, **extra: object
) -> TokenResponse:
    return TokenResponse(
        access_token="at-login",
        expires_in=900,
        refresh_token="rt-login",
        id_token=id_token,
        nonce_check=nonce_check,
        **extra,  # type: ignore[arg-type]
    )


def login(settings: Settings, idp: FakeIdP, response: TokenResponse, flow: str = "pkce") -> object:
    return complete_login(
        settings, idp.discovery(), request_for(idp), response, flow_id=flow, clock=lambda: 1000.0
    )


def test_login_validates_stores_and_names_the_user(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP
) -> None:
    token = idp.key.sign(claims_for(idp.issuer))
    session = login(settings, idp, response_for(token))
    assert session.display_name == "alice@example.com"  # type: ignore[attr-defined]
    stored = SessionStore().load()
    assert stored == session
    assert stored is not None
    assert (stored.issuer, stored.client_id, stored.flow) == (idp.issuer, CLIENT_ID, "pkce")
    assert (stored.access_token, stored.refresh_token, stored.id_token) == (
        "at-login",
        "rt-login",
        token,
    )
    assert stored.expires_at == 1900.0
    assert stored.scopes == ("openid", "profile", "email", "offline_access")
    assert idp.jwks_hits == 1


def test_display_name_falls_back_to_the_subject(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP
) -> None:
    token = idp.key.sign(claims_for(idp.issuer, email=None))
    assert login(settings, idp, response_for(token)).display_name == "auth0|alice"  # type: ignore[attr-defined]


def test_device_code_login_has_no_nonce_to_check(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP
) -> None:
    token = idp.key.sign(claims_for(idp.issuer, nonce=None))
    response = response_for(token, NonceCheck.NOT_IN_PROTOCOL, scope="openid email")
    session = login(settings, idp, response, "device_code")
    assert session.scopes == ("openid", "email")  # type: ignore[attr-defined]


@pytest.mark.parametrize("claim", [None, "n-replayed-from-another-login"])
def test_a_flow_that_says_nothing_gets_the_nonce_checked(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP, claim: str | None
) -> None:
    # The response names no nonce at all: core compares the claim with request.nonce.
    token = idp.key.sign(claims_for(idp.issuer, nonce=claim))
    with pytest.raises(IdTokenRejected, match=r"nonce (missing|mismatch)"):
        login(settings, idp, TokenResponse(access_token="at", id_token=token))
    assert SessionStore().load() is None


def test_a_protocol_without_a_nonce_leaves_an_old_one_unchecked(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP
) -> None:
    # An imported refresh token: the refreshed ID token carries the first login's nonce.
    token = idp.key.sign(claims_for(idp.issuer, nonce="n-of-the-original-login"))
    login(settings, idp, response_for(token, NonceCheck.NOT_IN_PROTOCOL), "refresh_import")
    assert SessionStore().load() is not None


@pytest.mark.parametrize("value", ["n-0S6_WzA2Mj", None, False])
def test_nonce_check_takes_only_the_enum(value: object) -> None:
    with pytest.raises(TypeError, match="must be a NonceCheck"):
        TokenResponse(access_token="at", nonce_check=value)  # type: ignore[arg-type]


def test_a_missing_id_token_is_rejected_and_nothing_stored(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP
) -> None:
    with pytest.raises(IdTokenRejected, match="openid scope was requested"):
        login(settings, idp, response_for(None))
    assert memory_keyring.entries == {}


def test_a_rejected_login_keeps_the_previous_session(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP
) -> None:
    old = make_session(idp.issuer)
    SessionStore().save(old)
    forged = rsa_key("k1").sign(claims_for(idp.issuer))
    with pytest.raises(IdTokenRejected, match="signature verification failed"):
        login(settings, idp, response_for(forged))
    assert SessionStore().load() == old


def test_a_new_login_replaces_the_previous_session(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP
) -> None:
    SessionStore().save(make_session(idp.issuer, email="bob@example.com"))
    login(settings, idp, response_for(idp.key.sign(claims_for(idp.issuer))))
    stored = SessionStore().load()
    assert stored is not None and stored.email == "alice@example.com"


def test_prepare_imports_loads_what_validation_needs() -> None:
    import subprocess
    import sys

    probe = (
        "import sys; from exls_core.session.login import prepare_imports; prepare_imports(); "
        "print(all(m in sys.modules for m in ('jwt', 'cryptography', 'filelock')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "True", done.stderr
