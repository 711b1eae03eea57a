"""A small OpenID provider that lies on request: the adversary of the adversarial suite.

One HTTP server on 127.0.0.1 hosts many *tenants*, each an issuer of its own
(``http://127.0.0.1:<port>/t/<name>``) with its own keys, behaviour and records, so that
scenarios can run concurrently against one server. A tenant speaks discovery, JWKS, device
authorization, token (device code, authorization code with PKCE, refresh), revocation,
userinfo and RFC 8414 metadata (at ``/.well-known/oauth-authorization-server/t/<name>``),
and its ``/authorize`` plays the browser's part of the PKCE flow: it calls the loopback
redirect back with a code and the state.

Every secret it hands out (access, refresh and ID tokens, authorization and device codes)
is random and recorded, and so is every PKCE verifier it receives, so the secrets-hygiene
test knows exactly what to look for.

Misbehaviour is configured per tenant with :class:`Fault` values and hooks; see
:class:`Tenant`.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import secrets
import select
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from testkit.http_server import FakeServer, QuietHandler

CLIENT_ID = "exls-adversarial-client"
SUBJECT = "auth0|alice"
EMAIL = "alice@example.com"
HUGE_BYTES = 5 * 1024 * 1024  # "several MB": five times what exls agrees to read
TRICKLE = 0.05  # seconds between the bytes of a trickled answer


# --- keys -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hang:
    """A hung answer: how long the client waited, and what ended it."""

    path: str
    waited: float  # seconds, measured here: the client's patience, not the machine's speed
    end: str  # "client gave up" | "ran out" | "released" (the provider closed)


@dataclass(frozen=True)
class Key:
    kid: str
    private: Any
    alg: str = "RS256"

    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        data: dict[str, Any] = json.loads(algorithm.to_jwk(self.private.public_key()))
        data.update(kid=self.kid, use="sig", alg=self.alg)
        return data

    def sign(self, claims: dict[str, Any], *, kid: str | None = "", **header: Any) -> str:
        """A JWT signed with this key; ``kid`` "" is this key's kid, None leaves it out."""
        headers = {**({} if kid is None else {"kid": kid or self.kid}), **header}
        return jwt.encode(claims, self.private, algorithm=self.alg, headers=headers)


@cache
def rsa_key(kid: str) -> Key:
    """One RSA key per kid for the whole test session (generating them is slow)."""
    return Key(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048))


@cache
def ec_key(kid: str) -> Key:
    return Key(kid, ec.generate_private_key(ec.SECP256R1()), "ES256")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(claims: dict[str, Any], alg: str = "none") -> str:
    """A JWT with no signature (alg none), as rp-id_token-sig-none sends it."""
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    return f"{header}.{b64url(json.dumps(claims).encode())}."


# --- faults -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One way for an endpoint to misbehave instead of answering properly."""

    kind: str  # body | hang | trickle | trickle-body | reset | reset-early | huge | redirect
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    location: str = ""
    seconds: float = 30.0  # far beyond any bound the tests accept

    @staticmethod
    def json(body: Any, status: int = 200) -> Fault:
        return Fault("body", status, json.dumps(body).encode())

    @staticmethod
    def html(status: int = 500) -> Fault:
        page = (
            "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>"
            "<h1>Bad Gateway</h1><script>alert('pwned')</script></body></html>"
        )
        return Fault("body", status, page.encode(), "text/html")

    @staticmethod
    def text(body: str, status: int = 200, content_type: str = "text/plain") -> Fault:
        return Fault("body", status, body.encode(), content_type)

    @staticmethod
    def hang(seconds: float = 30.0) -> Fault:
        return Fault("hang", seconds=seconds)

    @staticmethod
    def trickle(*, body: bool = False, seconds: float = 30.0) -> Fault:
        """An answer sent a byte at a time, each well within any read timeout: the headers
        (an endless one), or (``body``) the headers at once and then an endless body."""
        return Fault("trickle-body" if body else "trickle", seconds=seconds)

    @staticmethod
    def reset(*, early: bool = False) -> Fault:
        """A TCP reset: after the headers and part of the body, or (early) before any byte."""
        return Fault("reset-early" if early else "reset")

    @staticmethod
    def huge(status: int = 200) -> Fault:
        return Fault("huge", status)

    @staticmethod
    def redirect(location: str, status: int = 307) -> Fault:
        return Fault("redirect", status, location=location)


HTTP_500 = Fault.json({"error": "server_error"}, 500)


# --- tenants ----------------------------------------------------------------------------------

IdTokenMaker = Callable[["Tenant", dict[str, Any]], str | None]
# A device poll's answer: an OAuth error body (HTTP 400), a fault, or either made from the form.
PollStep = dict[str, Any] | Fault | Callable[[dict[str, str]], "dict[str, Any] | Fault"]


def _issue(prefix: str) -> str:
    return f"{prefix}{secrets.token_urlsafe(24)}"


@dataclass
class Tenant:
    """One issuer on the lying provider: configuration first, then what it recorded."""

    name: str
    base: str
    signer: Key = field(default_factory=lambda: rsa_key("adv-1"))
    published: list[Key] | None = None  # JWKS keys; None: [signer]
    client_id: str = CLIENT_ID
    id_token: IdTokenMaker | None = None  # makes the login's ID token (returning None: none)
    refresh_id_token: IdTokenMaker | None = None  # makes an ID token on refresh; default none
    access_lifetime: int = 3600
    discovery_extra: dict[str, Any] = field(default_factory=dict)  # None values drop a key
    discovery_fault: Fault | None = None
    jwks_fault: Fault | None = None
    device_fault: Fault | None = None
    device_answer: dict[str, Any] = field(default_factory=dict)  # None values drop a key
    poll_script: list[PollStep] = field(default_factory=list)  # answers before success
    token_fault: Fault | None = None  # device code and authorization code grants
    refresh_fault: Fault | None = None
    revoke_fault: Fault | None = None
    userinfo_claims: dict[str, Any] = field(
        default_factory=lambda: {"sub": SUBJECT, "email": EMAIL}
    )
    userinfo_fault: Fault | None = None
    oauth_metadata: dict[str, Any] | None = None  # RFC 8414 keys (None values drop); None: 404
    oauth_metadata_fault: Fault | None = None
    on_refresh: Callable[[Tenant], None] | None = None
    clock: Callable[[], float] = time.monotonic  # timestamps of polls and device requests
    callback: str = "auto"  # auto: /authorize calls the loopback back; manual: the test does
    auth_iss: str | None = ""  # "": the issuer; None: no iss; anything else: sent as is
    auth_state: str | None = ""  # "": the state received; anything else: sent instead

    hits: Counter[str] = field(default_factory=Counter)
    issued: dict[str, list[str]] = field(default_factory=dict)
    polls: list[float] = field(default_factory=list)
    device_requests: list[float] = field(default_factory=list)
    authorizations: list[dict[str, str]] = field(default_factory=list)
    callback_replies: list[tuple[int, str]] = field(default_factory=list)
    revoked: list[dict[str, str]] = field(default_factory=list)
    userinfo_tokens: list[str] = field(default_factory=list)  # bearer tokens userinfo got
    refresh_valid: set[str] = field(default_factory=set)
    refresh_used: set[str] = field(default_factory=set)
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    device_codes: set[str] = field(default_factory=set)
    authorized: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    hangs: list[Hang] = field(default_factory=list)  # one per hung answer, once it ended
    hangs_begun: int = 0
    hang_ended: threading.Condition = field(default_factory=threading.Condition)

    def ended_hangs(self, timeout: float = 60) -> list[Hang]:
        """Every hang this tenant began, once each has ended (the client gave up, usually)."""
        with self.hang_ended:
            done = self.hang_ended.wait_for(lambda: len(self.hangs) == self.hangs_begun, timeout)
        assert done, f"{self.name}: a hung answer did not end within {timeout} s"
        return list(self.hangs)

    def gave_up_on_every_hang(self) -> bool:
        """The client closed every hung connection itself, long before the hang ran out."""
        return all(hang.end == "client gave up" for hang in self.ended_hangs())

    @property
    def issuer(self) -> str:
        return f"{self.base}/t/{self.name}"

    def jwks_keys(self) -> list[Key]:
        return self.published if self.published is not None else [self.signer]

    def record(self, kind: str, value: str) -> str:
        with self.lock:
            self.issued.setdefault(kind, []).append(value)
        return value

    def all_secrets(self) -> dict[str, list[str]]:
        with self.lock:
            return {kind: list(values) for kind, values in self.issued.items()}

    # --- documents

    def discovery(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "device_authorization_endpoint": f"{self.issuer}/device",
            "revocation_endpoint": f"{self.issuer}/revoke",
            "jwks_uri": f"{self.issuer}/jwks",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        }
        doc.update(self.discovery_extra)
        return {k: v for k, v in doc.items() if v is not None}

    def authorization_server_metadata(self) -> dict[str, Any] | None:
        if self.oauth_metadata is None:
            return None
        doc = {"issuer": self.issuer, "token_endpoint": f"{self.issuer}/token"}
        doc.update(self.oauth_metadata)
        return {k: v for k, v in doc.items() if v is not None}

    def claims_for(self, nonce: str | None, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": SUBJECT,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 3600,
            "email": EMAIL,
            "jti": secrets.token_hex(8),  # every ID token is distinct, hence searchable
        }
        if nonce is not None:
            claims["nonce"] = nonce
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def good_id_token(self, context: dict[str, Any]) -> str:
        return self.signer.sign(self.claims_for(context.get("nonce")))

    def token_success(self, context: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.record("access_token", _issue("AT-")),
            "token_type": "Bearer",
            "expires_in": self.access_lifetime,
            "refresh_token": self.record("refresh_token", _issue("RT-")),
            "scope": "openid profile email offline_access",
        }
        with self.lock:
            self.refresh_valid.add(body["refresh_token"])
        if context.get("grant") == "refresh_token":
            maker = self.refresh_id_token or (lambda tenant, ctx: None)
        else:
            maker = self.id_token or (lambda tenant, ctx: tenant.good_id_token(ctx))
        id_token = maker(self, context)
        if id_token is not None:
            body["id_token"] = self.record("id_token", id_token)
        return body


# --- the server -------------------------------------------------------------------------------


class _Drop(Exception):
    """The handler cut the connection on purpose."""


class LyingIdP:
    """``with LyingIdP() as idp: tenant = idp.tenant("case", ...)``."""

    def __init__(self) -> None:
        self.tenants: dict[str, Tenant] = {}
        self._server = _Server(_Handler, name="lying-idp")
        self._server.idp = self
        self.base = self._server.base
        self.errors = self._server.errors  # exceptions in handlers: bugs of this fake, not faults
        self.release = self._server.release  # ends every hanging answer
        self._callbacks: list[threading.Thread] = []  # the "browser" redirects of /authorize
        self._front: TlsFront | None = None
        self._front_lock = threading.Lock()

    def __enter__(self) -> LyingIdP:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._front is not None:
            self._front.close()
        self._server.close(check=False)  # the scheduler reports self.errors
        for thread in self._callbacks:
            thread.join(60)
        self.errors += [f"{t.name} did not end" for t in self._callbacks if t.is_alive()]

    def call_back(self, tenant: Tenant, redirect_uri: str, params: dict[str, str]) -> None:
        thread = threading.Thread(
            target=_call_back, args=(tenant, redirect_uri, params), name="lying-idp-callback"
        )
        self._callbacks.append(thread)
        thread.start()

    def tls_front(self, directory: Path) -> TlsFront:
        """This provider as the https host REMOTE_HOST (through a proxy); see TlsFront."""
        with self._front_lock:
            if self._front is None:
                self._front = TlsFront(self._server.server_address[1], directory)
            return self._front

    def tenant(self, name: str, **config: Any) -> Tenant:
        if name in self.tenants:
            raise ValueError(f"tenant {name} exists")
        tenant = Tenant(name=name, base=self.base, **config)
        self.tenants[name] = tenant
        return tenant


class _Server(FakeServer):
    idp: LyingIdP


class _Handler(QuietHandler):
    server: _Server
    tenant: Tenant  # the one the request is for, once _tenant() found it

    # --- plumbing

    def _tenant(self) -> tuple[Tenant, str, dict[str, str]] | None:
        parts = urlsplit(self.path)
        segments = parts.path.split("/", 3)  # "", "t", name, rest
        if len(segments) < 4 or segments[1] != "t":
            return None
        tenant = self.server.idp.tenants.get(segments[2])
        if tenant is None:
            return None
        self.tenant = tenant
        return tenant, segments[3], dict(parse_qsl(parts.query))

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            raise _Drop from None

    def _json(self, status: int, body: Any) -> None:
        self._send(status, json.dumps(body).encode())

    def _fault(self, fault: Fault) -> None:
        if fault.kind == "body":
            self._send(fault.status, fault.body, fault.content_type)
        elif fault.kind == "hang":
            self._hang(fault.seconds)
            self.close_connection = True
            raise _Drop
        elif fault.kind in ("trickle", "trickle-body"):
            self._trickle(fault)
            self.close_connection = True
            raise _Drop
        elif fault.kind == "reset-early":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            raise _Drop
        elif fault.kind == "reset":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "4096")
            self.end_headers()
            self.wfile.write(b'{"access_token": "AT-half')
            self.wfile.flush()
            # SO_LINGER 0: close() sends a TCP reset instead of an orderly FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            raise _Drop
        elif fault.kind == "huge":
            self.send_response(fault.status)
            self.send_header("Content-Type", "application/json")
            padding = b"A" * HUGE_BYTES
            body = b'{"access_token": "' + padding + b'", "token_type": "Bearer"}'
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                for start in range(0, len(body), 65536):
                    self.wfile.write(body[start : start + 65536])
            except OSError:
                raise _Drop from None
        elif fault.kind == "redirect":
            self.send_response(fault.status)
            self.send_header("Location", fault.location)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            raise AssertionError(fault.kind)

    def _hang(self, seconds: float) -> None:
        """Answer nothing until the client closes the connection (or ``seconds``, or close)."""
        tenant = self.tenant
        with tenant.hang_ended:
            tenant.hangs_begun += 1
        started = time.monotonic()
        end = "ran out"
        while (waited := time.monotonic() - started) < seconds:
            if self.server.release.is_set():
                end = "released"
                break
            readable, _, _ = select.select([self.connection], [], [], 0.02)
            if readable and not _peek(self.connection):
                end = "client gave up"
                break
        with tenant.hang_ended:
            tenant.hangs.append(Hang(self.path, waited, end))
            tenant.hang_ended.notify_all()

    def _trickle(self, fault: Fault) -> None:
        """Send a byte every TRICKLE seconds until the client hangs up (or ``seconds``)."""
        if fault.kind == "trickle-body":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.wfile.flush()
            endless = b'{"keys": [' + b" " * 999_989 + b"]}"
        else:
            endless = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 60_000
        tenant = self.tenant
        with tenant.hang_ended:
            tenant.hangs_begun += 1
        started = time.monotonic()
        end = "ran out"
        for byte in endless:
            if time.monotonic() - started >= fault.seconds:
                break
            if self.server.release.is_set():
                end = "released"
                break
            readable, _, _ = select.select([self.connection], [], [], TRICKLE)
            if readable and not _peek(self.connection):
                end = "client gave up"
                break
            try:
                self.connection.sendall(bytes([byte]))
            except OSError:
                end = "client gave up"
                break
        waited = time.monotonic() - started
        with tenant.hang_ended:
            tenant.hangs.append(Hang(self.path, waited, end))
            tenant.hang_ended.notify_all()

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        return dict(parse_qsl(self.rfile.read(length).decode("utf-8", "replace")))

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except _Drop:
            self.close_connection = True

    # --- GET

    def do_GET(self) -> None:
        prefix = "/.well-known/oauth-authorization-server/t/"
        if self.path.startswith(prefix):  # RFC 8414 section 3: before the issuer's path
            self._oauth_metadata(self.path.removeprefix(prefix))
            return
        found = self._tenant()
        if found is None:
            self._json(404, {"error": "not_found"})
            return
        tenant, endpoint, query = found
        tenant.hits[endpoint] += 1
        if endpoint == ".well-known/openid-configuration":
            if tenant.discovery_fault:
                self._fault(tenant.discovery_fault)
            else:
                self._json(200, tenant.discovery())
        elif endpoint == "jwks":
            if tenant.jwks_fault:
                self._fault(tenant.jwks_fault)
            else:
                self._json(200, {"keys": [key.jwk() for key in tenant.jwks_keys()]})
        elif endpoint == "authorize":
            self._authorize(tenant, query)
        elif endpoint == "userinfo":
            authorization = self.headers.get("Authorization", "")
            with tenant.lock:
                tenant.userinfo_tokens.append(authorization.removeprefix("Bearer "))
            if tenant.userinfo_fault:
                self._fault(tenant.userinfo_fault)
            else:
                self._json(200, tenant.userinfo_claims)
        else:
            self._json(404, {"error": "not_found"})

    def _oauth_metadata(self, name: str) -> None:
        tenant = self.server.idp.tenants.get(name)
        document = tenant.authorization_server_metadata() if tenant is not None else None
        if tenant is not None:
            self.tenant = tenant  # what _hang records against
            tenant.hits["oauth-authorization-server"] += 1
            if tenant.oauth_metadata_fault:
                self._fault(tenant.oauth_metadata_fault)
                return
        if document is None:
            self._json(404, {"error": "not_found"})
        else:
            self._json(200, document)

    def _authorize(self, tenant: Tenant, query: dict[str, str]) -> None:
        code = tenant.record("code", _issue("AC-"))
        with tenant.lock:
            tenant.codes[code] = query
            tenant.authorizations.append(query)
        self._send(200, b"<p>Signed in at the lying provider.</p>", "text/html")
        tenant.authorized.set()
        if tenant.callback == "auto":
            params = {"code": code, "state": tenant.auth_state or query.get("state", "")}
            if tenant.auth_iss is not None:
                params["iss"] = tenant.auth_iss or tenant.issuer
            self.server.idp.call_back(tenant, query["redirect_uri"], params)

    # --- POST

    def do_POST(self) -> None:
        found = self._tenant()
        if found is None:
            self._json(404, {"error": "not_found"})
            return
        tenant, endpoint, _query = found
        form = self._form()
        tenant.hits[endpoint] += 1
        if endpoint == "device":
            self._device(tenant, form)
        elif endpoint == "token":
            self._token(tenant, form)
        elif endpoint == "revoke":
            with tenant.lock:
                tenant.revoked.append(form)
            if tenant.revoke_fault:
                self._fault(tenant.revoke_fault)
            else:
                self._json(200, {})
        else:
            self._json(404, {"error": "not_found"})

    def _device(self, tenant: Tenant, form: dict[str, str]) -> None:
        tenant.device_requests.append(tenant.clock())
        if tenant.device_fault:
            self._fault(tenant.device_fault)
            return
        device_code = tenant.record("device_code", _issue("DC-"))
        with tenant.lock:
            tenant.device_codes.add(device_code)
        answer: dict[str, Any] = {
            "device_code": device_code,
            "user_code": "WDJB-MJHT",
            "verification_uri": f"{tenant.issuer}/activate",
            "verification_uri_complete": f"{tenant.issuer}/activate?user_code=WDJB-MJHT",
            "expires_in": 30,
            "interval": 1,
        }
        answer.update(tenant.device_answer)
        self._json(200, {k: v for k, v in answer.items() if v is not None})

    def _token(self, tenant: Tenant, form: dict[str, str]) -> None:
        grant = form.get("grant_type", "")
        tenant.hits[f"token:{grant.rsplit(':', 1)[-1]}"] += 1
        if form.get("client_id") != tenant.client_id:
            self._json(401, {"error": "invalid_client"})
        elif grant == "urn:ietf:params:oauth:grant-type:device_code":
            self._device_poll(tenant, form)
        elif grant == "authorization_code":
            self._code_grant(tenant, form)
        elif grant == "refresh_token":
            self._refresh(tenant, form)
        else:
            self._json(400, {"error": "unsupported_grant_type"})

    def _device_poll(self, tenant: Tenant, form: dict[str, str]) -> None:
        with tenant.lock:
            tenant.polls.append(tenant.clock())
            known = form.get("device_code") in tenant.device_codes
            step = tenant.poll_script.pop(0) if tenant.poll_script else None
        if callable(step):
            step = step(form)
        if not known:
            self._json(400, {"error": "invalid_grant"})
        elif isinstance(step, Fault):
            self._fault(step)
        elif step is not None:
            self._json(400, step)
        elif tenant.token_fault:
            self._fault(tenant.token_fault)
        else:
            self._json(200, tenant.token_success({"grant": "device_code", "nonce": None}))

    def _code_grant(self, tenant: Tenant, form: dict[str, str]) -> None:
        verifier = form.get("code_verifier", "")
        tenant.record("code_verifier", verifier)
        with tenant.lock:
            request = tenant.codes.pop(form.get("code", ""), None)
        challenge = b64url(hashlib.sha256(verifier.encode()).digest())
        if (
            request is None
            or request.get("code_challenge") != challenge
            or request.get("redirect_uri") != form.get("redirect_uri")
        ):
            self._json(400, {"error": "invalid_grant"})
        elif tenant.token_fault:
            self._fault(tenant.token_fault)
        else:
            context = {"grant": "authorization_code", "nonce": request.get("nonce")}
            self._json(200, tenant.token_success(context))

    def _refresh(self, tenant: Tenant, form: dict[str, str]) -> None:
        if tenant.on_refresh is not None:
            tenant.on_refresh(tenant)
        if tenant.refresh_fault:
            self._fault(tenant.refresh_fault)
            return
        token = form.get("refresh_token", "")
        with tenant.lock:
            if token in tenant.refresh_used:
                tenant.refresh_valid.clear()  # a reused rotated token revokes the grant
            valid = token in tenant.refresh_valid
            if valid:
                tenant.refresh_valid.discard(token)
                tenant.refresh_used.add(token)
        if not valid:
            self._json(400, {"error": "invalid_grant", "error_description": "unknown token"})
            return
        self._json(200, tenant.token_success({"grant": "refresh_token", "nonce": None}))


def _peek(connection: socket.socket) -> bytes:
    """The next byte without taking it; b"" when the client closed (or reset) the connection."""
    try:
        return connection.recv(1, socket.MSG_PEEK)
    except OSError:
        return b""


def _call_back(tenant: Tenant, redirect_uri: str, params: dict[str, str]) -> None:
    """The browser following the provider's redirect to the loopback listener."""
    parts = urlsplit(redirect_uri)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        connection.request("GET", f"{parts.path}?{urlencode(params)}")
        reply = connection.getresponse()
        tenant.callback_replies.append((reply.status, reply.read().decode("utf-8", "replace")))
    except OSError as exc:
        tenant.callback_replies.append((0, f"{type(exc).__name__}: {exc}"))
    finally:
        connection.close()


# --- a remote https issuer --------------------------------------------------------------------

REMOTE_HOST = "idp.example"  # reserved (RFC 2606): never resolved, only named through the proxy
LOOPBACK_TLS_HOST = "127.0.0.1"  # https://127.0.0.1 (port 443), through the same proxy


class TlsFront:
    """The lying provider as ``https://idp.example``: an issuer exls must treat as remote.

    exls reaches it the way it reaches any provider behind a corporate proxy: with
    ``HTTPS_PROXY`` pointing here and ``REQUESTS_CA_BUNDLE`` at a throw-away CA. This proxy
    answers ``CONNECT idp.example:443``, terminates TLS with a certificate for that name and
    relays the plain HTTP to the provider on 127.0.0.1. Nothing leaves the machine.
    ``CONNECT 127.0.0.1:443`` is served the same way: an https issuer on loopback.
    """

    def __init__(self, backend_port: int, directory: Path) -> None:
        import ssl

        import trustme

        ca = trustme.CA()
        directory.mkdir(parents=True, exist_ok=True)
        self.ca_path = directory / "tls-front-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_path))
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert(REMOTE_HOST, LOOPBACK_TLS_HOST).configure_cert(self._context)
        self._backend_port = backend_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.proxy = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(
            target=self._accept, name="lying-idp-tls-front", daemon=True
        )
        self._accepting.start()

    def env(self) -> dict[str, str]:
        """What exls needs to reach https://idp.example through this proxy."""
        return {"HTTPS_PROXY": self.proxy, "REQUESTS_CA_BUNDLE": str(self.ca_path)}

    def close(self) -> None:
        self._closed.set()
        self._accepting.join(5)
        for thread in self._threads:
            thread.join(5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(
                target=self._tunnel, args=(client,), name="lying-idp-tls-tunnel", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _tunnel(self, client: socket.socket) -> None:
        with client:
            client.settimeout(10)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 8192:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            hosts = (REMOTE_HOST, LOOPBACK_TLS_HOST)
            if not head.startswith(tuple(f"CONNECT {host}:443 ".encode() for host in hosts)):
                client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            try:
                secure = self._context.wrap_socket(client, server_side=True)
            except OSError:
                return
            with secure, socket.create_connection(("127.0.0.1", self._backend_port)) as plain:
                self._relay(secure, plain)

    def _relay(self, secure: Any, plain: socket.socket) -> None:
        """Copy bytes both ways until either side closes (one thread, no TLS races)."""
        import selectors

        with selectors.DefaultSelector() as selector:
            selector.register(secure, selectors.EVENT_READ, plain)
            selector.register(plain, selectors.EVENT_READ, secure)
            while not self._closed.is_set():
                for key, _ in selector.select(0.1):
                    source: Any = key.fileobj
                    try:
                        data = source.recv(65536)
                        while source is secure and secure.pending():  # TLS buffers records
                            data += secure.recv(secure.pending())
                    except OSError:
                        return
                    if not data:
                        return
                    key.data.sendall(data)
