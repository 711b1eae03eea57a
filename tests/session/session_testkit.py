"""Test doubles for the session tests: an in-memory keyring with fault injection, signing
keys and ID tokens, and a small local identity provider (discovery, JWKS, token, revoke)."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError, PasswordSetError

from exls_core.session.model import Session
from testkit.http_server import FakeServer, QuietHandler

WINDOWS_LIMIT = 2560  # bytes of UTF-16 in a Windows Credential Locker secret
CLIENT_ID = "test-client"


class Crash(BaseException):
    """The process died in the middle of a keyring write (not an Exception: nothing catches it)."""


class MemoryKeyring(KeyringBackend):
    """A real keyring backend, in memory, that can fail, hang, lie and count."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}
        self.writes = 0
        self.reads = 0
        self.fail_on_write: int | None = None  # this write (1-based) and all later ones fail
        self.write_error: Callable[[], BaseException] = lambda: PasswordSetError("injected")
        self.read_error: Callable[[], BaseException] | None = None
        self.hang: threading.Event | None = None  # calls wait for it (30 s at most)
        self.hangs_ran_out = 0
        self.on_read: Callable[[str], None] | None = None
        self.tamper: Callable[[str, str], str | None] | None = None

    def clone(self) -> MemoryKeyring:
        copy = MemoryKeyring()
        copy.entries = dict(self.entries)
        return copy

    def names(self, service: str = "exalsius_cli") -> set[str]:
        return {u for s, u in self.entries if s == service}

    def _write(self) -> None:
        self.writes += 1
        if self.fail_on_write is not None and self.writes >= self.fail_on_write:
            raise self.write_error()

    def get_password(self, service: str, username: str) -> str | None:
        self.reads += 1
        if self.hang is not None and not self.hang.wait(30):
            self.hangs_ran_out += 1  # the caller waited the whole hang out
        if self.read_error is not None:
            raise self.read_error()
        if self.on_read is not None:
            self.on_read(username)
        value = self.entries.get((service, username))
        if value is not None and self.tamper is not None:
            return self.tamper(username, value)
        return value

    def set_password(self, service: str, username: str, password: str) -> None:
        self._write()
        if len(password.encode("utf-16-le")) > WINDOWS_LIMIT:
            raise PasswordSetError("larger than Windows Credential Locker accepts")
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self._write()
        if self.entries.pop((service, username), None) is None:
            raise PasswordDeleteError("not found")


# --- keys and ID tokens


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class SigningKey:
    kid: str
    private: Any
    alg: str

    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        data: dict[str, Any] = json.loads(algorithm.to_jwk(self.private.public_key()))
        data.update(kid=self.kid, use="sig", alg=self.alg)
        return data

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(
            claims, self.private, algorithm=self.alg, headers={"kid": self.kid, **header}
        )


def rsa_key(kid: str, alg: str = "RS256") -> SigningKey:
    return SigningKey(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048), alg)


def ec_key(kid: str) -> SigningKey:
    return SigningKey(kid, ec.generate_private_key(ec.SECP256R1()), "ES256")


def ed_key(kid: str) -> SigningKey:
    return SigningKey(kid, ed25519.Ed25519PrivateKey.generate(), "EdDSA")


def claims_for(issuer: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": "auth0|alice",
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 3600,
        "email": "alice@example.com",
        "nonce": "n-0S6_WzA2Mj",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def unsigned_token(claims: dict[str, Any]) -> str:
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64url(json.dumps(claims).encode())}."


def make_session(issuer: str, **overrides: Any) -> Session:
    now = time.time()
    values: dict[str, Any] = {
        "issuer": issuer,
        "client_id": CLIENT_ID,
        "access_token": "at-initial",
        "expires_at": now + 3600,
        "refresh_token": "rt-0",
        "id_token": "header.payload.signature",
        "scopes": ("openid", "profile", "email", "offline_access"),
        "flow": "pkce",
        "subject": "auth0|alice",
        "email": "alice@example.com",
        "logged_in_at": now,
    }
    values.update(overrides)
    return Session(**values)


# --- a local identity provider


@dataclass
class FakeIdP:
    """Discovery, JWKS, a token endpoint that rotates refresh tokens, and revocation.

    Reusing a rotated refresh token revokes the whole grant, as real providers do.
    """

    key: SigningKey
    revocation: bool = True
    rotate: bool = True  # issue a new refresh token on every refresh
    refresh_delay: float = 0.0
    expires_in: float = 3600  # of the access tokens refreshes return
    id_token_on_refresh: Callable[[FakeIdP], str | None] = lambda idp: None
    token_status: int | None = None  # force an HTTP status from the token endpoint
    revoke_status: int = 200
    on_refresh: Callable[[str], None] | None = None
    valid: set[str] = field(default_factory=lambda: {"rt-0"})
    used: set[str] = field(default_factory=set)
    refreshes: int = 0
    rejected: int = 0
    discovery_hits: int = 0
    jwks_hits: int = 0
    revoked: list[tuple[str, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    refresh_gate: int = 0  # hold each refresh until this many have arrived (a sure race)
    refresh_arrivals: int = 0
    arrived: threading.Condition = field(default_factory=threading.Condition)
    server: FakeServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.base

    @property
    def issuer(self) -> str:
        return self.url + "/"

    def discovery(self) -> dict[str, Any]:
        doc = {
            "issuer": self.issuer,
            "authorization_endpoint": self.url + "/authorize",
            "token_endpoint": self.url + "/token",
            "jwks_uri": self.url + "/jwks",
        }
        if self.revocation:
            doc["revocation_endpoint"] = self.url + "/revoke"
        return doc

    def refresh(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        token = form.get("refresh_token", "")
        if form.get("grant_type") != "refresh_token" or form.get("client_id") != CLIENT_ID:
            return 400, {"error": "invalid_request"}
        if self.on_refresh is not None:
            self.on_refresh(token)
        with self.arrived:
            self.refresh_arrivals += 1
            self.arrived.notify_all()
            self.arrived.wait_for(lambda: self.refresh_arrivals >= self.refresh_gate, 60)
        time.sleep(self.refresh_delay)  # widen the window in which processes could race
        with self.lock:
            if token in self.used:  # reuse of a rotated token: revoke the grant
                self.valid.clear()
            if token not in self.valid:
                self.rejected += 1
                return 400, {"error": "invalid_grant", "error_description": "reused or unknown"}
            self.refreshes += 1
            body: dict[str, Any] = {
                "access_token": f"at-{self.refreshes}",
                "token_type": "Bearer",
                "expires_in": self.expires_in,
            }
            if self.rotate:
                self.valid.discard(token)
                self.used.add(token)
                body["refresh_token"] = f"rt-{self.refreshes}"
                self.valid.add(body["refresh_token"])
        id_token = self.id_token_on_refresh(self)
        if id_token:
            body["id_token"] = id_token
        return 200, body

    def start(self) -> FakeIdP:
        idp = self

        class Handler(QuietHandler):
            def send_json(self, status: int, body: Any) -> None:
                self.reply(status, json.dumps(body).encode())

            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    idp.discovery_hits += 1
                    self.send_json(200, idp.discovery())
                elif self.path == "/jwks":
                    idp.jwks_hits += 1
                    self.send_json(200, {"keys": [idp.key.jwk()]})
                else:
                    self.send_json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                form = {k: v[0] for k, v in parse_qs(self.form().decode()).items()}
                if self.path == "/token":
                    if idp.token_status is not None:
                        self.send_json(idp.token_status, {"error": "server_error"})
                        return
                    self.send_json(*idp.refresh(form))
                elif self.path == "/revoke":
                    idp.revoked.append(
                        (form.get("token", ""), form.get("token_type_hint", ""), form["client_id"])
                    )
                    self.send_json(
                        idp.revoke_status, {} if idp.revoke_status == 200 else {"error": "x"}
                    )
                else:
                    self.send_json(404, {"error": "not_found"})

        self.server = FakeServer(Handler, name="session-idp").start()
        return self

    def stop(self) -> None:
        """Stop serving (a test may do it early: the provider went away); safe twice."""
        if self.server is not None:
            self.server.close()


def jwt_like(length: int, seed: str) -> str:
    """A token shaped like a JWT (base64url segments joined by dots) of exactly length chars."""
    import hashlib

    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    stream = ""
    counter = 0
    while len(stream) < length:
        block = hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        stream += "".join(alphabet[b % 64] for b in block)
        counter += 1
    chars = list(stream[:length])
    for cut in (length // 8, length * 5 // 8):  # header.payload.signature
        if 0 < cut < length - 1:
            chars[cut] = "."
    return "".join(chars)
