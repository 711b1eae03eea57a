"""ID token validation: every rule, named in the error (OpenID RP certification style)."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import trustme
from session_testkit import (
    CLIENT_ID,
    FakeIdP,
    SigningKey,
    claims_for,
    ec_key,
    ed_key,
    rsa_key,
    unsigned_token,
)

from exls_core.errors import ExlsError
from exls_core.session.validation import (
    IdTokenRejected,
    JwksCache,
    fetch_jwks,
    validate_id_token,
)
from testkit.http_server import FakeServer, QuietHandler

ISSUER = "https://idp.example/"
NONCE = "n-0S6_WzA2Mj"


class Keys:
    """An injected JWKS endpoint that counts fetches; the cache lives in tmp_path."""

    def __init__(self, path: Path, *keys: SigningKey) -> None:
        self.published = list(keys)
        self.fetches = 0
        self.cache = JwksCache("https://idp.example/jwks", self.fetch, path / "jwks.json")

    def fetch(self, uri: str) -> Any:
        self.fetches += 1
        return {"keys": [k.jwk() for k in self.published]}


@pytest.fixture
def keys(tmp_path: Path, signing_key: SigningKey) -> Keys:
    return Keys(tmp_path, signing_key)


def check(token: str, keys: Keys, nonce: str | None = NONCE, issuer: str = ISSUER) -> Any:
    return validate_id_token(
        token, issuer=issuer, client_id=CLIENT_ID, jwks=keys.cache, nonce=nonce
    )


def rejected(token: str, keys: Keys, nonce: str | None = NONCE) -> str:
    with pytest.raises(IdTokenRejected) as caught:
        check(token, keys, nonce)
    assert token not in str(caught.value) and token not in repr(caught.value)
    return caught.value.message


def test_a_valid_token_gives_its_claims(keys: Keys, signing_key: SigningKey) -> None:
    claims = check(signing_key.sign(claims_for(ISSUER)), keys)
    assert claims["sub"] == "auth0|alice" and claims["email"] == "alice@example.com"
    assert keys.fetches == 1


@pytest.mark.parametrize(
    "make", [lambda: rsa_key("ps", "PS256"), lambda: ec_key("ec"), lambda: ed_key("ed")]
)
def test_other_allowed_algorithms(tmp_path: Path, make: Any) -> None:
    key = make()
    assert check(key.sign(claims_for(ISSUER)), Keys(tmp_path, key))["sub"] == "auth0|alice"


def test_alg_none_is_rejected(keys: Keys) -> None:
    assert rejected(unsigned_token(claims_for(ISSUER)), keys) == (
        "ID token rejected: unsupported algorithm 'none'"
    )


def test_hs256_signed_with_the_client_id_is_rejected(keys: Keys) -> None:
    token = jwt.encode(claims_for(ISSUER), CLIENT_ID + "-padding-to-32-bytes!!", "HS256")
    assert rejected(token, keys) == "ID token rejected: unsupported algorithm 'HS256'"


def test_a_bad_signature_is_rejected(keys: Keys) -> None:
    forged = rsa_key("k1").sign(claims_for(ISSUER))  # same kid, another key
    assert rejected(forged, keys) == "ID token rejected: signature verification failed"


def test_an_altered_payload_is_rejected(keys: Keys, signing_key: SigningKey) -> None:
    header, _, signature = signing_key.sign(claims_for(ISSUER)).split(".")
    other = signing_key.sign(claims_for(ISSUER, sub="mallory")).split(".")[1]
    message = rejected(f"{header}.{other}.{signature}", keys)
    assert message == "ID token rejected: signature verification failed"


def test_wrong_issuer(keys: Keys, signing_key: SigningKey) -> None:
    token = signing_key.sign(claims_for("https://evil.example/"))
    assert rejected(token, keys) == "ID token rejected: issuer mismatch"


def test_wrong_audience(keys: Keys, signing_key: SigningKey) -> None:
    token = signing_key.sign(claims_for(ISSUER, aud="someone-else"))
    assert rejected(token, keys) == "ID token rejected: audience mismatch"


@pytest.mark.parametrize(
    ("aud", "azp", "ok"),
    [
        ([CLIENT_ID, "https://api.exalsius.ai"], CLIENT_ID, True),
        ([CLIENT_ID, "https://api.exalsius.ai"], "someone-else", False),
        ([CLIENT_ID, "https://api.exalsius.ai"], None, False),
        (CLIENT_ID, "someone-else", False),
        ([CLIENT_ID], None, True),
    ],
)
def test_authorized_party(
    keys: Keys, signing_key: SigningKey, aud: Any, azp: str | None, ok: bool
) -> None:
    token = signing_key.sign(claims_for(ISSUER, aud=aud, azp=azp))
    if ok:
        assert check(token, keys)["aud"] == aud
    else:
        assert rejected(token, keys) == "ID token rejected: authorized party (azp) mismatch"


def test_expired_beyond_the_leeway(keys: Keys, signing_key: SigningKey) -> None:
    now = int(time.time())
    token = signing_key.sign(claims_for(ISSUER, iat=now - 3600, exp=now - 125))
    assert rejected(token, keys) == "ID token rejected: expired"


def test_expired_within_the_leeway_is_accepted(keys: Keys, signing_key: SigningKey) -> None:
    now = int(time.time())
    check(signing_key.sign(claims_for(ISSUER, iat=now - 3600, exp=now - 100)), keys)


def test_issued_in_the_future(keys: Keys, signing_key: SigningKey) -> None:
    now = int(time.time())
    token = signing_key.sign(claims_for(ISSUER, iat=now + 600, exp=now + 4000))
    assert rejected(token, keys) == "ID token rejected: issued in the future (iat)"
    check(signing_key.sign(claims_for(ISSUER, iat=now + 100)), keys)  # small skew is fine


@pytest.mark.parametrize("claim", ["sub", "exp", "iat", "iss", "aud"])
def test_required_claims(keys: Keys, signing_key: SigningKey, claim: str) -> None:
    token = signing_key.sign(claims_for(ISSUER, **{claim: None}))
    assert rejected(token, keys) == f"ID token rejected: missing claim '{claim}'"


def test_nonce_missing_or_wrong(keys: Keys, signing_key: SigningKey) -> None:
    assert rejected(signing_key.sign(claims_for(ISSUER, nonce=None)), keys) == (
        "ID token rejected: nonce missing"
    )
    assert rejected(signing_key.sign(claims_for(ISSUER, nonce="other")), keys) == (
        "ID token rejected: nonce mismatch"
    )


def test_without_a_sent_nonce_the_nonce_is_not_checked(keys: Keys, signing_key: SigningKey) -> None:
    check(signing_key.sign(claims_for(ISSUER, nonce=None)), keys, nonce=None)
    check(signing_key.sign(claims_for(ISSUER, nonce="whatever")), keys, nonce=None)


def test_malformed_token(keys: Keys) -> None:
    assert rejected("not-a-jwt", keys) == "ID token rejected: malformed token"


def test_key_rotation_needs_exactly_one_refetch(tmp_path: Path, signing_key: SigningKey) -> None:
    keys = Keys(tmp_path, signing_key)
    check(signing_key.sign(claims_for(ISSUER)), keys)  # caches k1
    assert keys.fetches == 1
    new_key = rsa_key("k2")
    keys.published = [new_key]  # the issuer rotated
    again = Keys(tmp_path, new_key)  # a later process, same disk cache
    check(new_key.sign(claims_for(ISSUER)), again)
    assert again.fetches == 1
    check(new_key.sign(claims_for(ISSUER)), again)  # now cached
    assert again.fetches == 1


def test_an_unknown_kid_is_fetched_once_then_rejected(keys: Keys, signing_key: SigningKey) -> None:
    check(signing_key.sign(claims_for(ISSUER)), keys)
    stranger = rsa_key("k9")
    assert rejected(stranger.sign(claims_for(ISSUER)), keys) == (
        "ID token rejected: no RS256 key 'k9' in the issuer's JWKS"
    )
    assert keys.fetches == 2


def test_a_key_published_for_another_algorithm_is_not_used(
    tmp_path: Path, signing_key: SigningKey
) -> None:
    keys = Keys(tmp_path, signing_key)  # JWK says alg RS256
    token = jwt.encode(
        claims_for(ISSUER), signing_key.private, algorithm="PS256", headers={"kid": "k1"}
    )
    assert rejected(token, keys) == "ID token rejected: no PS256 key 'k1' in the issuer's JWKS"


def test_jwks_over_http_from_the_provider(idp: FakeIdP, tmp_path: Path) -> None:
    cache = JwksCache(idp.url + "/jwks", lambda uri: fetch_jwks(uri, 5), tmp_path / "c.json")
    token = idp.key.sign(claims_for(idp.issuer))
    validate_id_token(token, issuer=idp.issuer, client_id=CLIENT_ID, jwks=cache, nonce=None)
    assert idp.jwks_hits == 1


def test_jwks_endpoint_errors_are_clear(idp: FakeIdP) -> None:
    with pytest.raises(ExlsError, match=r"signing keys: .* answered HTTP 404"):
        fetch_jwks(idp.url + "/nope", 5)


@pytest.fixture
def https_jwks(tmp_path: Path, signing_key: SigningKey) -> Iterator[tuple[str, Path]]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    body = json.dumps({"keys": [signing_key.jwk()]}).encode()

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            self.reply(200, body)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with FakeServer(Handler, tls=context, name="https-jwks") as server:
        yield f"{server.base}/jwks", bundle


def test_jwks_over_tls_honours_requests_ca_bundle(
    https_jwks: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, bundle = https_jwks
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with pytest.raises(ExlsError, match="TLS verification failed"):
        fetch_jwks(url, 5)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    assert fetch_jwks(url, 5)["keys"][0]["kid"] == "k1"
