"""ID tokens that must be rejected (OpenID RP certification), each through the real CLI.

Every case logs in with the device code flow against a lying provider, over a previous
session: exls must exit 1 naming the failed check, leave the keyring byte for byte as it
was, and ``exls auth status --json`` must still show the previous session. The controls at
the end run the same harness against an honest provider and must log in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from adv_kit import (
    EMAIL,
    Outcome,
    Outcomes,
    Scenarios,
    assert_clean_rejection,
    leaks,
    login_scenario,
)
from cryptography.hazmat.primitives import serialization
from lying_idp import CLIENT_ID, LyingIdP, Tenant, b64url, ec_key, rsa_key, unsigned

pytestmark = pytest.mark.attack("id_token")

Context = dict[str, Any]


def hs256(claims: dict[str, Any], secret: bytes, kid: str = "adv-1") -> str:
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = b64url(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(mac)}"


def claims(tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    return tenant.claims_for(None, **overrides)


def signed(**overrides: Any) -> Any:
    """An ID token signed with the tenant's real key, with some claims changed."""
    return lambda tenant, ctx: tenant.signer.sign(claims(tenant, **overrides))


def public_pem(tenant: Tenant) -> bytes:
    pem: bytes = tenant.signer.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem


NOW = int(time.time())
ATTACKER = rsa_key("adv-attacker")

# name -> (tenant configuration, the check exls must name)
REJECTIONS: dict[str, tuple[dict[str, Any], str]] = {
    "rp-id_token-sig-none": (
        {"id_token": lambda t, c: unsigned(claims(t))},
        "unsupported algorithm 'none'",
    ),
    "sig-none-uppercase": (
        {"id_token": lambda t, c: unsigned(claims(t), alg="NONE")},
        "unsupported algorithm 'NONE'",
    ),
    "rp-id_token-bad-sig-rs256": (
        {"id_token": lambda t, c: ATTACKER.sign(claims(t), kid=t.signer.kid)},
        "signature verification failed",
    ),
    "rp-id_token-bad-sig-es256": (
        {
            "signer": ec_key("adv-ec"),
            "id_token": lambda t, c: ec_key("adv-ec-attacker").sign(claims(t), kid="adv-ec"),
        },
        "signature verification failed",
    ),
    "rp-id_token-bad-sig-hs256-client-id-secret": (
        {"id_token": lambda t, c: hs256(claims(t), CLIENT_ID.encode())},
        "unsupported algorithm 'HS256'",
    ),
    "hs256-with-public-key-as-secret": (  # the classic RS256 -> HS256 key confusion
        {"id_token": lambda t, c: hs256(claims(t), public_pem(t))},
        "unsupported algorithm 'HS256'",
    ),
    "embedded-jwk-header": (  # CVE-2018-0114 style: trust the key the token brings along
        {"id_token": lambda t, c: ATTACKER.sign(claims(t), kid=t.signer.kid, jwk=ATTACKER.jwk())},
        "signature verification failed",
    ),
    "jku-header-to-attacker-keys": (
        {
            "id_token": lambda t, c: ATTACKER.sign(
                claims(t), kid="adv-attacker", jku="http://127.0.0.1:9/jwks"
            )
        },
        "no RS256 key 'adv-attacker' in the issuer's JWKS",
    ),
    "alg-swapped-to-es256": (
        {"id_token": lambda t, c: ec_key("adv-ec-attacker").sign(claims(t), kid=t.signer.kid)},
        "no ES256 key 'adv-1' in the issuer's JWKS",
    ),
    "rp-id_token-iss-mismatch": (
        {"id_token": signed(iss="https://evil.example/")},
        "issuer mismatch",
    ),
    "iss-with-trailing-slash": (
        {"id_token": lambda t, c: t.signer.sign(claims(t, iss=t.issuer + "/"))},
        "issuer mismatch",
    ),
    "rp-id_token-aud": (
        {"id_token": signed(aud="someone-else")},
        "audience mismatch",
    ),
    "aud-list-without-client": (
        {"id_token": signed(aud=["someone-else", "another"], azp="someone-else")},
        "audience mismatch",
    ),
    "azp-wrong-with-several-audiences": (
        {"id_token": signed(aud=[CLIENT_ID, "other-api"], azp="other-api")},
        "authorized party (azp) mismatch",
    ),
    "azp-missing-with-several-audiences": (
        {"id_token": signed(aud=[CLIENT_ID, "other-api"])},
        "authorized party (azp) mismatch",
    ),
    "expired": (
        {"id_token": signed(iat=NOW - 7200, exp=NOW - 3600)},
        "expired",
    ),
    "rp-id_token-iat-far-future": (
        {"id_token": signed(iat=NOW + 86400, exp=NOW + 90000)},
        "issued in the future (iat)",
    ),
    "nbf-far-future": (
        {"id_token": signed(nbf=NOW + 86400)},
        "not yet valid (nbf)",
    ),
    "rp-id_token-iat-missing": (
        {"id_token": signed(iat=None)},
        "missing claim 'iat'",
    ),
    "exp-missing": (
        {"id_token": signed(exp=None)},
        "missing claim 'exp'",
    ),
    "exp-not-a-number": (
        {"id_token": signed(exp="tomorrow")},
        "malformed token",
    ),
    "rp-id_token-sub-missing": (
        {"id_token": signed(sub=None)},
        "missing claim 'sub'",
    ),
    "sub-empty": (
        {"id_token": signed(sub="")},
        "invalid sub",
    ),
    "sub-not-a-string": (
        {"id_token": signed(sub=42)},
        "invalid sub",
    ),
    "rp-id_token-kid-unknown": (
        {"id_token": lambda t, c: rsa_key("adv-rogue").sign(claims(t))},
        "no RS256 key 'adv-rogue' in the issuer's JWKS",
    ),
    "crit-header-not-understood": (
        {"id_token": lambda t, c: t.signer.sign(claims(t), crit=["urn:x-unknown"])},
        "malformed token",
    ),
    "malformed": (
        {"id_token": lambda t, c: "not.a.jwt"},
        "malformed token",
    ),
    # No ID token at all: the device grant then asks userinfo, the code flow refuses; both
    # are in test_adv_providers.py.
}

# The same harness against an honest provider: these must log in.
CONTROLS: dict[str, dict[str, Any]] = {
    "rp-id_token-sig-rs256": {},
    "rp-id_token-sig-es256": {"signer": ec_key("adv-ec")},
    "rp-id_token-kid-absent-single-jwks": {
        "id_token": lambda t, c: t.signer.sign(claims(t), kid=None)
    },
    "rp-id_token-kid-absent-multiple-jwks": {
        "signer": rsa_key("adv-2"),
        "published": [rsa_key("adv-1"), rsa_key("adv-2")],
        "id_token": lambda t, c: t.signer.sign(claims(t), kid=None),
    },
    "aud-list-with-matching-azp": {"id_token": signed(aud=[CLIENT_ID, "api"], azp=CLIENT_ID)},
}


def scenarios(idp: LyingIdP, root: Path) -> Scenarios:
    configs = {name: config for name, (config, _) in REJECTIONS.items()} | CONTROLS
    return {
        name: partial(login_scenario, idp, root, name, **config) for name, config in configs.items()
    }


@pytest.mark.parametrize("name", REJECTIONS)
def test_rejected_with_the_check_named_and_nothing_stored(
    name: str, outcomes: Outcomes[Outcome]
) -> None:
    outcome = outcomes[name]
    assert_clean_rejection(outcome.result, outcome.before, outcome.after)
    assert outcome.result.error == f"ID token rejected: {REJECTIONS[name][1]}", outcome.result
    assert outcome.previous_intact(), outcome.status
    assert outcome.tenant.hits["token:device_code"] == 1  # the flow itself went through
    assert leaks(outcome.tenant, outcome.result.out, outcome.result.err) == []


@pytest.mark.attack("control")
@pytest.mark.parametrize("name", CONTROLS)
def test_an_honest_provider_logs_in(name: str, outcomes: Outcomes[Outcome]) -> None:
    outcome = outcomes[name]
    assert outcome.result.rc == 0, outcome.result
    assert outcome.result.err.rstrip().endswith(f"Logged in as {EMAIL}"), outcome.result
    assert outcome.after != outcome.before
    assert outcome.logged_in_as_alice(), outcome.status
