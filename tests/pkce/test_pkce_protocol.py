"""PKCE (RFC 7636), state and the authorization URL."""

from __future__ import annotations

import base64
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from exls_flows_pkce.pkce import authorization_url, challenge, new_state, new_verifier

UNRESERVED = re.compile(r"[A-Za-z0-9\-._~]+")


# RFC 7636 Appendix B: the 32 random octets, the verifier they encode, and its S256 challenge.
# fmt: off
RFC_OCTETS = bytes([
    116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186,
    22, 212, 37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
])
# fmt: on
RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_challenge_matches_rfc7636_appendix_b() -> None:
    assert base64.urlsafe_b64encode(RFC_OCTETS).rstrip(b"=").decode() == RFC_VERIFIER
    assert challenge(RFC_VERIFIER) == RFC_CHALLENGE


def test_verifiers_are_43_unreserved_characters_and_never_repeat() -> None:
    verifiers = {new_verifier() for _ in range(200)}
    assert len(verifiers) == 200
    for verifier in verifiers:
        assert len(verifier) == 43 and UNRESERVED.fullmatch(verifier)
        assert len(challenge(verifier)) == 43


def test_state_carries_at_least_128_bits() -> None:
    states = {new_state() for _ in range(200)}
    assert len(states) == 200
    assert all(len(s) * 6 >= 128 and UNRESERVED.fullmatch(s) for s in states)


@pytest.mark.parametrize(
    "verifier", ["", "a" * 42, "a" * 129, "a" * 42 + "+", "é" * 43, "a b" * 20]
)
def test_challenge_refuses_verifiers_outside_rfc7636(verifier: str) -> None:
    with pytest.raises(ValueError, match="43 to 128"):
        challenge(verifier)


def test_challenge_accepts_the_limits() -> None:
    assert challenge("a" * 43) and challenge("~._-" * 32)


def build(endpoint: str = "https://idp.test/authorize", **extra: str) -> dict[str, list[str]]:
    url = authorization_url(
        endpoint,
        client_id="client-1",
        redirect_uri="http://127.0.0.1:54321/callback",
        scopes=("openid", "profile", "email", "offline_access"),
        state="state-xyz",
        nonce="nonce-abc",
        code_challenge="challenge-123",
        extra=extra,
    )
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path, parts.fragment) == (
        *urlsplit(endpoint)[:3],
        "",
    )
    return parse_qs(parts.query, keep_blank_values=True)


def test_authorization_url_carries_every_parameter() -> None:
    params = build(
        audience="https://api.exalsius.ai", login_hint="ana@acme.com", connection="acme-okta"
    )
    assert params == {
        "response_type": ["code"],
        "client_id": ["client-1"],
        "redirect_uri": ["http://127.0.0.1:54321/callback"],
        "scope": ["openid profile email offline_access"],
        "state": ["state-xyz"],
        "nonce": ["nonce-abc"],
        "code_challenge": ["challenge-123"],
        "code_challenge_method": ["S256"],
        "audience": ["https://api.exalsius.ai"],
        "login_hint": ["ana@acme.com"],
        "connection": ["acme-okta"],
    }


def test_extra_parameters_never_override_the_protocol_ones() -> None:
    params = build(state="forged", redirect_uri="https://evil.test/", code_challenge_method="plain")
    assert params["state"] == ["state-xyz"]
    assert params["redirect_uri"] == ["http://127.0.0.1:54321/callback"]
    assert params["code_challenge_method"] == ["S256"]


def test_a_query_in_the_endpoint_is_kept() -> None:
    params = build("https://idp.test/authorize?tenant=acme")
    assert params["tenant"] == ["acme"] and params["response_type"] == ["code"]


def test_values_are_percent_encoded() -> None:
    params = build(login_hint="a+b&c=d@x.com")
    assert params["login_hint"] == ["a+b&c=d@x.com"]
