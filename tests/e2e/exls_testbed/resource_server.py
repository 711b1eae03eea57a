"""A small API protected by the test provider's access tokens, as the exalsius API would be.

It accepts a bearer token only after checking it as a resource server does (RFC 6750, RFC
9068): a JWT signed by one of the provider's keys (its JWKS, fetched over TLS), for this
API's audience, from the provider's issuer, not expired. Anything else gets ``401`` with
``WWW-Authenticate: Bearer realm="exls-test-api", error="invalid_token"`` (no ``error`` when
no token came at all, RFC 6750 3.1). ``deny(token)`` refuses a token that still checks out,
as an API does with a revoked one.

Routes: ``GET/POST /me`` (the token's ``sub`` and ``aud``), ``GET /redirect?to=URL`` (a 302
there, checked like any route: it needs no token). Every request is recorded in ``seen``:
the path, the bearer token sent (None without one) and the status answered.
"""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import requests

from exls_testbed.idp import IdpServer
from testkit.http_server import FakeServer, QuietHandler

REALM = "exls-test-api"
API_AUDIENCE = "https://api.exls.test"  # what exls logs in for (EXLS_AUTH_AUDIENCE)


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    token: str | None
    status: int
    authorization: str | None  # the raw header, to show nothing else was sent


class ResourceServer:
    def __init__(self, idp: IdpServer, audience: str, *, check_tokens: bool = True) -> None:
        self.idp = idp
        self.audience = audience
        self.check_tokens = check_tokens  # False: another origin that only records requests
        self.seen: list[Seen] = []
        self.denied: set[str] = set()
        self._keys: dict[str, Any] = {}
        self._lock = threading.Lock()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(idp.tls.cert_path), str(idp.tls.key_path))
        self.server = FakeServer(self._handler(), tls=context, name="resource-server")

    @property
    def url(self) -> str:
        return self.server.base

    def start(self) -> ResourceServer:
        self.server.start()
        return self

    def close(self) -> None:
        self.server.close()

    def deny(self, token: str) -> None:
        with self._lock:
            self.denied.add(token)

    # -- the checks --------------------------------------------------------------------------

    def _signing_key(self, kid: str) -> Any:
        with self._lock:
            if kid not in self._keys:  # a new key at the provider: fetch its JWKS again
                with self.idp.session() as http:
                    uri = self.idp.discovery()["jwks_uri"]
                    jwks = http.get(uri, timeout=30).json()
                self._keys = {key["kid"]: jwt.PyJWK(key).key for key in jwks["keys"]}
            return self._keys.get(kid)

    def check(self, token: str) -> tuple[dict[str, Any] | None, str]:
        """(claims, "") for a token this API accepts, else (None, why not)."""
        with self._lock:
            if token in self.denied:
                return None, "revoked"
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._signing_key(str(kid))
            if key is None:
                return None, "unknown signing key"
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self.audience,
                issuer=self.idp.issuer,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            return None, "expired"
        except (jwt.InvalidTokenError, requests.RequestException) as exc:
            return None, type(exc).__name__
        return claims, ""

    # -- HTTP -----------------------------------------------------------------------------

    def _handler(self) -> type[QuietHandler]:
        api = self

        class Handler(QuietHandler):
            def _serve(self) -> None:
                self.form()  # read the body, if any
                authorization = self.headers.get("Authorization")
                scheme, _, token = (authorization or "").partition(" ")
                bearer = token if scheme.lower() == "bearer" and token else None
                status, body, headers = api._answer(self.path, bearer)
                with api._lock:
                    api.seen.append(Seen(self.command, self.path, bearer, status, authorization))
                self.reply(status, json.dumps(body).encode(), headers=headers)

            do_GET = do_POST = _serve

        return Handler

    def _answer(self, path: str, token: str | None) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(path)
        if parts.path == "/redirect":
            return 302, {}, {"Location": parse_qs(parts.query)["to"][0]}
        if not self.check_tokens:
            return 200, {"recorded": True}, {}
        if token is None:
            return 401, {"error": "no token"}, {"WWW-Authenticate": f'Bearer realm="{REALM}"'}
        claims, why = self.check(token)
        if claims is None:
            challenge = f'Bearer realm="{REALM}", error="invalid_token", error_description="{why}"'
            return 401, {"error": "invalid_token", "why": why}, {"WWW-Authenticate": challenge}
        return 200, {"sub": claims["sub"], "aud": claims["aud"]}, {}
