"""ID token validation (OpenID Connect Core 3.1.3.7) with PyJWT: nothing is hand-rolled.

Checked before anything is stored: the algorithm against an allow-list of asymmetric ones,
the signature against the issuer's JWKS (fetched again once for an unknown ``kid``, or when
the cached keys do not verify the signature: that is how key rotation looks from here),
``iss``, ``aud``/``azp``, ``exp``/``iat`` with 120 s leeway and, at login, the ``nonce``.
The keys are fetched with exls_core.http, so the same timeout, REQUESTS_CA_BUNDLE and proxy
settings apply as everywhere else; they are the trust anchor, so no redirect is followed.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from exls_core import cache
from exls_core.errors import ExlsError

if TYPE_CHECKING:
    from exls_core.session.model import Session

ALLOWED_ALGORITHMS = (
    *("RS256", "RS384", "RS512"),
    *("PS256", "PS384", "PS512"),
    *("ES256", "ES384", "ES512"),
    "EdDSA",
)
KEY_TYPE = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
LEEWAY = 120  # seconds of clock skew tolerated on exp and iat (and nbf)
JWKS_CACHE_TTL = 24 * 3600.0

Fetch = Callable[[str], Any]


class IdTokenRejected(ExlsError):
    """One line naming the check that failed; the token itself is never part of it."""

    def __init__(self, check: str, hint: str | None = None) -> None:
        super().__init__(f"ID token rejected: {check}", hint=hint)


CLOCK_HINT = "Check that this computer's clock is correct, then run exls login again."


def fetch_jwks(uri: str, timeout: float) -> Any:
    """GET the JWKS with exls_core.http (timeout, CA bundle, proxies, bounded size)."""
    import requests

    from exls_core.http import describe_network_error, new_session, not_followed, read_json

    try:
        with new_session(timeout) as http:
            # The keys are the trust anchor: no redirect (new_session follows none), which
            # might lead anywhere, https to http included.
            response = http.get(uri, stream=True, headers={"Accept": "application/json"})
            if response.status_code != 200:
                raise ExlsError(
                    f"Cannot fetch the identity provider's signing keys: "
                    f"{uri} answered HTTP {response.status_code}{not_followed(response)}."
                )
            return read_json(response, "JWKS endpoint")
    except requests.RequestException as exc:
        raise ExlsError(
            "Cannot fetch the identity provider's signing keys: "
            f"{describe_network_error(exc, uri)}."
        ) from None


class JwksCache:
    """The issuer's public keys, cached on disk for a day (they are not secret)."""

    def __init__(
        self,
        uri: str,
        fetch: Fetch,
        path: str | os.PathLike[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.uri = uri
        self._fetch = fetch
        self._path = path if path is not None else cache.entry_path("jwks", uri)
        self._clock = clock
        self.from_cache = False  # whether the last keys() answer came from the disk cache

    def keys(self, *, fresh: bool = False) -> list[Any]:
        if not fresh and (cached := self._read()) is not None:
            self.from_cache = True
            return cached
        self.from_cache = False
        document = self._fetch(self.uri)
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list):
            raise ExlsError("The identity provider's JWKS is not a JSON object with keys.")
        self._write(document)
        return keys

    def _read(self) -> list[Any] | None:
        document = cache.load(self._path, self.uri, ttl=JWKS_CACHE_TTL, clock=self._clock)
        keys = document.get("keys") if isinstance(document, dict) else None
        return keys if isinstance(keys, list) else None

    def _write(self, document: Any) -> None:
        cache.store(self._path, self.uri, document, clock=self._clock)  # without: more fetches


def _candidates(keys: list[Any], kid: str | None, alg: str) -> list[Any]:
    from jwt import PyJWK, PyJWTError

    found = []
    for jwk in keys:
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
            continue
        if kid is not None and jwk.get("kid") != kid:
            continue
        if jwk.get("kty") != KEY_TYPE[alg[:2]] or jwk.get("alg", alg) != alg:
            continue
        try:
            found.append(PyJWK(jwk, algorithm=alg))
        except PyJWTError:
            continue  # a key PyJWT cannot use (unknown curve...) cannot have signed it
    return found


def _rejection(exc: Exception) -> IdTokenRejected:
    import jwt

    if isinstance(exc, jwt.InvalidSignatureError):
        return IdTokenRejected("signature verification failed")
    if isinstance(exc, jwt.ExpiredSignatureError):
        return IdTokenRejected("expired", hint=CLOCK_HINT)
    if isinstance(exc, jwt.ImmatureSignatureError):
        check = "issued in the future (iat)" if "iat" in str(exc) else "not yet valid (nbf)"
        return IdTokenRejected(check, hint=CLOCK_HINT)
    if isinstance(exc, jwt.InvalidIssuerError):
        return IdTokenRejected("issuer mismatch")
    if isinstance(exc, jwt.InvalidAudienceError):
        return IdTokenRejected("audience mismatch")
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return IdTokenRejected(f"missing claim '{exc.claim}'")
    if isinstance(exc, jwt.InvalidIssuedAtError):
        return IdTokenRejected("invalid iat")
    if isinstance(exc, getattr(jwt.exceptions, "InvalidSubjectError", ())):  # PyJWT >= 2.10
        return IdTokenRejected("invalid sub")
    if isinstance(exc, jwt.DecodeError):
        return IdTokenRejected("malformed token")
    return IdTokenRejected(f"invalid token ({type(exc).__name__})")


def _decode(
    id_token: str, keys: list[Any], *, audience: str, issuer: str, alg: str
) -> dict[str, Any]:
    """The claims if one of the keys verifies the token; without a kid any of them may."""
    import jwt

    if not keys:
        raise jwt.InvalidSignatureError("no candidate key")
    for index, key in enumerate(keys):
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key=key.key,  # kty and alg were matched already; works with PyJWT 2.8 too
                algorithms=[alg],
                audience=audience,
                issuer=issuer,
                leeway=LEEWAY,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
            return claims
        except jwt.InvalidSignatureError:
            if index == len(keys) - 1:
                raise
    raise AssertionError("unreachable")


def validate_id_token(
    id_token: str, *, issuer: str, client_id: str, jwks: JwksCache, nonce: str | None
) -> dict[str, Any]:
    """The verified claims, or IdTokenRejected naming the check that failed.

    ``nonce`` is the one sent at login; None skips that check (device code, refresh).
    """
    import jwt

    try:
        header = jwt.get_unverified_header(id_token)
    except (jwt.PyJWTError, RecursionError):  # RecursionError: a header nested absurdly deep
        raise IdTokenRejected("malformed token") from None
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
        raise IdTokenRejected(f"unsupported algorithm {str(alg)[:20]!r}")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise IdTokenRejected("malformed token")

    keys = _candidates(jwks.keys(), kid, alg)
    if not keys:  # a new kid: the issuer rotated its keys since we cached them
        keys = _candidates(jwks.keys(fresh=True), kid, alg)
    if not keys:
        raise IdTokenRejected(f"no {alg} key {str(kid)[:40]!r} in the issuer's JWKS")
    checks = {"audience": client_id, "issuer": issuer, "alg": alg}
    try:
        claims = _decode(id_token, keys, **checks)
    except jwt.InvalidSignatureError as exc:
        if not jwks.from_cache:
            raise _rejection(exc) from None
        # The cached keys may be old ones: a rotation without a kid, or new keys published
        # under the same kid. Fetch them once more before refusing.
        try:
            claims = _decode(id_token, _candidates(jwks.keys(fresh=True), kid, alg), **checks)
        except jwt.PyJWTError as again:
            raise _rejection(again) from None
    except jwt.PyJWTError as exc:
        raise _rejection(exc) from None

    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != client_id:
        raise IdTokenRejected("authorized party (azp) mismatch")
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise IdTokenRejected("invalid sub")
    if nonce is not None:
        sent = claims.get("nonce")
        if not isinstance(sent, str):
            raise IdTokenRejected("nonce missing")
        if not hmac.compare_digest(sent.encode(), nonce.encode()):
            raise IdTokenRejected("nonce mismatch")
    return claims


class IdentityChanged(IdTokenRejected):
    """A refreshed ID token, valid in itself, names another identity than the login's."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what} changed on refresh",
            hint="The identity provider now answers for another identity, so the stored "
            'session was removed: run "exls login".',
        )


def _login_claims(id_token: str | None) -> dict[str, Any] | None:
    """The claims of the ID token stored at login (verified then, so not again here)."""
    if not id_token:
        return None  # a session without one (a login identified by userinfo)
    import jwt

    try:
        claims = jwt.decode(id_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return claims if isinstance(claims, dict) else None


def _audiences(claims: dict[str, Any]) -> set[str]:
    aud = claims.get("aud")
    return set(aud) if isinstance(aud, list) else {str(aud)}


def check_same_identity(claims: dict[str, Any], session: Session) -> None:
    """OpenID Connect Core 12.2: a refreshed ID token has the login's ``sub``, and the same
    ``iss``, ``aud`` and ``azp`` (present or absent alike) as the login's ID token."""
    if claims["sub"] != session.subject:
        raise IdentityChanged("subject")
    login = _login_claims(session.id_token)
    if login is None:
        return  # nothing more to compare with: sub is what identifies the user
    if claims["iss"] != login.get("iss"):
        raise IdentityChanged("issuer")
    if _audiences(claims) != _audiences(login):
        raise IdentityChanged("audience")
    if claims.get("azp") != login.get("azp"):
        raise IdentityChanged("authorized party (azp)")
