"""The protocol pieces of the browser flow: PKCE (RFC 7636, S256 only), state and the URL."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

# RFC 7636 4.1: 43 to 128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def new_verifier() -> str:
    """32 random octets, base64url: 43 characters, as RFC 7636 4.1 recommends."""
    return secrets.token_urlsafe(32)


def new_state() -> str:
    """256 bits of randomness: unguessable by anything else on this machine or network."""
    return secrets.token_urlsafe(32)


def challenge(verifier: str) -> str:
    """The S256 code challenge: BASE64URL(SHA256(ASCII(verifier))) without padding."""
    if not _VERIFIER.fullmatch(verifier):
        raise ValueError("a PKCE verifier is 43 to 128 characters of A-Z a-z 0-9 - . _ ~")
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorization_url(
    endpoint: str,
    *,
    client_id: str,
    redirect_uri: str,
    scopes: Iterable[str],
    state: str,
    nonce: str,
    code_challenge: str,
    extra: Mapping[str, str],
) -> str:
    """The authorization request (RFC 6749 4.1.1 + PKCE + OIDC nonce) as a URL to open."""
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(scopes),
        "state": state,
        "nonce": nonce,
        "code_challenge": code_challenge,
        "code_challenge_method": "S256",
    }
    for name, value in extra.items():  # audience, login_hint, SSO routing: never override ours
        params.setdefault(name, value)
    parts = urlsplit(endpoint)
    query = urlencode(params, quote_via=quote)
    if parts.query:  # keep what the provider put in its endpoint URL
        query = f"{parts.query}&{query}"
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
