"""A stand-in CI OIDC issuer: answers like GitHub Actions' ID token request URL, over TLS.

    with CiIssuer(tls) as ci:                     # 127.0.0.1, an ephemeral port, the test CA
        env = ci.github_env()                     # ACTIONS_ID_TOKEN_REQUEST_URL and _TOKEN
        idp.configure(workload_trust=ci.trust(audience=idp.issuer))
        jwt = ci.mint(audience=idp.issuer)        # a CI token, as GitLab's id_tokens: would hold
        ci.requests                               # what the job asked for (audience, auth ok?)

GitHub's protocol (docs.github.com, "About security hardening with OpenID Connect"): a job with
``permissions: id-token: write`` gets ``ACTIONS_ID_TOKEN_REQUEST_URL`` (already carrying a query
string) and ``ACTIONS_ID_TOKEN_REQUEST_TOKEN``; ``GET $URL&audience=AUD`` with
``Authorization: bearer $TOKEN`` answers ``{"value": "<JWT>"}``. The issuer publishes its
discovery document and keys, which the test provider fetches to verify what exls trades.
"""

from __future__ import annotations

import json
import secrets
import ssl
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from testkit.http_server import FakeServer, QuietHandler

if TYPE_CHECKING:
    from exls_testbed.idp import TlsFiles

SUBJECT = "repo:acme/train:ref:refs/heads/main"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"


@dataclass(frozen=True)
class TokenRequest:
    audience: str | None
    authorized: bool  # the bearer request token was the right one
    query: str


def _new_key() -> tuple[Any, dict[str, Any]]:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    public.update(kid=f"ci-{uuid.uuid4().hex[:12]}", alg="RS256", use="sig")
    return key, public


class _Handler(QuietHandler):
    server: _CiServer

    def do_GET(self) -> None:
        ci = self.server.issuer
        parts = urlsplit(self.path)
        if parts.path == "/.well-known/openid-configuration":
            self.reply(200, json.dumps(ci.discovery()).encode())
        elif parts.path == "/.well-known/jwks":
            self.reply(200, json.dumps({"keys": [ci.public_jwk]}).encode())
        elif parts.path == "/_apis/token":
            self._token_request(ci, parts.query)
        else:
            self.reply(404, b'{"message":"not found"}')

    def _token_request(self, ci: CiIssuer, query: str) -> None:
        given = self.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        authorized = scheme.lower() == "bearer" and secrets.compare_digest(
            value.encode(), ci.request_token.encode()
        )
        audiences = parse_qs(query).get("audience")
        ci.record(TokenRequest(audiences[0] if audiences else None, authorized, query))
        if ci.refuse_status:
            self.reply(ci.refuse_status, b'{"message":"refused by the test"}')
        elif not authorized:
            self.reply(401, b'{"message":"Bad credentials"}')
        elif "api-version=2.0" not in query.split("&"):
            self.reply(400, b'{"message":"api-version missing: the query string was replaced"}')
        else:
            token = ci.mint(audience=audiences[0] if audiences else ci.base)
            self.reply(200, json.dumps({"count": 1, "value": token}).encode())


class _CiServer(FakeServer):
    issuer: CiIssuer


class CiIssuer:
    """The stand-in issuer; ``close()`` (or the with block) stops it and joins its threads."""

    def __init__(self, tls: TlsFiles, subject: str = SUBJECT) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(tls.cert_path), str(tls.key_path))
        self.subject = subject
        self.key, self.public_jwk = _new_key()
        self.request_token = secrets.token_urlsafe(32)
        self.refuse_status = 0  # answer every token request with this status when set
        self.lifetime = 300  # seconds; GitHub's ID tokens are short-lived too
        self._lock = threading.Lock()
        self._requests: list[TokenRequest] = []
        self.minted: list[str] = []
        self._server = _CiServer(_Handler, tls=context, name="ci-issuer")
        self._server.issuer = self

    @property
    def base(self) -> str:
        return self._server.base

    def start(self) -> CiIssuer:
        self._server.start()
        return self

    def close(self) -> None:
        self._server.close()

    def __enter__(self) -> CiIssuer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(self, request: TokenRequest) -> None:
        with self._lock:
            self._requests.append(request)

    @property
    def requests(self) -> list[TokenRequest]:
        with self._lock:
            return list(self._requests)

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.base,
            "jwks_uri": f"{self.base}/.well-known/jwks",
            "subject_types_supported": ["public", "pairwise"],
            "response_types_supported": ["id_token"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def mint(self, *, audience: str, subject: str | None = None, unknown_key: bool = False) -> str:
        """A CI token like GitHub's; ``unknown_key``: signed by a key the issuer never
        published (with a kid of its own), which a provider must refuse."""
        import jwt

        now = int(time.time())
        claims = {
            "iss": self.base,
            "sub": subject or self.subject,
            "aud": audience,
            "repository": "acme/train",
            "ref": "refs/heads/main",
            "jti": uuid.uuid4().hex,
            "iat": now,
            "nbf": now - 5,
            "exp": now + self.lifetime,
        }
        key, public = _new_key() if unknown_key else (self.key, self.public_jwk)
        token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": public["kid"]})
        with self._lock:
            self.minted.append(token)
        return token

    def github_env(self) -> dict[str, str]:
        """What a GitHub Actions job with ``permissions: id-token: write`` has."""
        return {
            "GITHUB_ACTIONS": "true",
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"{self.base}/_apis/token?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token,
        }

    def trust(
        self,
        *,
        audience: str,
        subject_token_type: str = ID_TOKEN_TYPE,
        api_audiences: list[str] | None = None,
    ) -> dict[str, Any]:
        """The test provider's ``workload_trust`` setting for this issuer."""
        trust: dict[str, Any] = {
            "issuer": self.base,
            "jwks_uri": f"{self.base}/.well-known/jwks",
            "audience": audience,
            "subject_token_type": subject_token_type,
        }
        if api_audiences is not None:
            trust["api_audiences"] = api_audiences
        return trust
