"""PKCE flow test helpers: a recording UI, raw HTTP over loopback, a fake token endpoint and
a fake browser that performs the redirect.

Test modules import it by name: pytest puts this folder on sys.path (rootdir import mode).
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

from exls_core.http import new_session
from exls_core.plugin import FlowRequest, FlowSettings
from exls_flows_pkce.pkce import challenge
from testkit.http_server import FakeServer, QuietHandler

ISSUER = "https://idp.test"
CLIENT_ID = "exls-test-client"


# --- the terminal ---------------------------------------------------------------------------


class FakeStatus:
    def __init__(self, ui: FakeUI) -> None:
        self._ui = ui

    def update(self, text: str) -> None:
        self._ui.updates.append(text)


class FakeUI:
    """Records everything a flow tells the user."""

    is_terminal = True

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.warnings: list[str] = []
        self.statuses: list[str] = []
        self.updates: list[str] = []

    def message(self, text: str) -> None:
        self.messages.append(text)

    def warning(self, text: str) -> None:
        self.warnings.append(text)

    def print_rich(self, renderable: Any) -> None:
        self.messages.append(str(renderable))

    @contextmanager
    def status(self, text: str) -> Iterator[FakeStatus]:
        self.statuses.append(text)
        yield FakeStatus(self)

    @property
    def everything(self) -> str:
        return "\n".join(self.messages + self.warnings + self.statuses + self.updates)


# --- raw HTTP over loopback -----------------------------------------------------------------


@dataclass
class Reply:
    status: int | None  # None: the connection was closed without an answer
    headers: dict[str, str]
    body: str


def parse_reply(raw: bytes) -> Reply:
    if not raw:
        return Reply(None, {}, "")
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(int(lines[0].split(" ")[1]), headers, body.decode("utf-8", "replace"))


# Timeouts are generous: they only end a wait for an answer that should come; a test that
# expects none says so with its own.
def read_all(sock: socket.socket, timeout: float = 30.0) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def send_raw(port: int, data: bytes, timeout: float = 30.0) -> Reply:
    """Send bytes as they are (any request, however broken) and read the whole reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return parse_reply(read_all(sock, timeout))


def get(
    port: int, target: str, *, headers: dict[str, str] | None = None, timeout: float = 30.0
) -> Reply:
    lines = [f"GET {target} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return send_raw(port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), timeout)


def resolve(url: str) -> str:
    """The authorization URL behind the listener's ``/start`` address (what a browser is
    handed on Linux), as the browser's first GET finds it; any other URL as it is."""
    parts = urlsplit(url)
    if parts.hostname != "127.0.0.1" or parts.path != "/start":
        return url
    reply = get(parts.port or 80, f"{parts.path}?{parts.query}")
    assert reply.status == 303, reply
    return reply.headers["location"]


def callback_target(**params: str) -> str:
    return "/callback?" + urlencode(params)


# --- a fake token endpoint --------------------------------------------------------------------


@dataclass
class TokenEndpoint:
    """POST /token over http(s) on 127.0.0.1: checks the grant like a real provider would."""

    code: str = "the-authorization-code"
    challenge: str | None = None  # from the authorization URL; the verifier must match it
    error: dict[str, str] | None = None  # answer this (HTTP 400) instead of tokens
    raw_answer: tuple[int, str] | None = None  # or exactly this (status, body)
    requests: list[dict[str, str]] = field(default_factory=list)
    url: str = ""
    tokens: dict[str, Any] = field(
        default_factory=lambda: {
            "access_token": "AT-secret-123",
            "refresh_token": "RT-secret-456",
            "id_token": "header.payload.signature",
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": "openid profile email offline_access",
        }
    )

    def answer(self, form: dict[str, str]) -> tuple[int, dict[str, Any] | str]:
        self.requests.append(form)
        if self.raw_answer:
            return self.raw_answer
        if self.error:
            return 400, self.error
        ok = (
            form.get("grant_type") == "authorization_code"
            and form.get("code") == self.code
            and form.get("client_id") == CLIENT_ID
            and self.challenge is not None
            and challenge(form.get("code_verifier", "x" * 43)) == self.challenge
            and form.get("redirect_uri", "").startswith("http://127.0.0.1:")
        )
        if not ok:
            return 400, {"error": "invalid_grant", "error_description": "grant request is invalid"}
        return 200, self.tokens


@contextmanager
def serve_token_endpoint(
    endpoint: TokenEndpoint, tls: ssl.SSLContext | None = None
) -> Iterator[TokenEndpoint]:
    class Handler(QuietHandler):
        def do_POST(self) -> None:
            form = dict(parse_qsl(self.form().decode()))
            status, body = endpoint.answer(form)
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.reply(status, data)

    with FakeServer(Handler, tls=tls, name="token-endpoint") as server:
        endpoint.url = f"{server.base}/token"
        yield endpoint


# --- a fake browser ---------------------------------------------------------------------------


class FakeBrowser:
    """An opener for the flow: records the URL and, like a person, follows the redirect.

    ``respond(params)`` turns the authorization request into the redirect's query (None: the
    user never comes back). The GET runs in a thread, as a real browser would not block;
    ``wait()`` joins it (``run`` in the tests always does), so it never outlives the test.
    """

    def __init__(self, respond: Any = None, *, opened: bool = True) -> None:
        self.respond = respond or (
            lambda params: {"code": "the-authorization-code", "state": params["state"]}
        )
        self.opened = opened
        self.urls: list[str] = []  # the authorization URLs (after the listener's /start)
        self.handed: list[str] = []  # what the browser was started with
        self.replies: list[Reply] = []
        self.errors: list[str] = []  # the GET failed (e.g. the listener was gone)
        self._threads: list[threading.Thread] = []

    @property
    def params(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.urls[0]).query).items()}

    def __call__(self, url: str) -> bool:
        self.handed.append(url)
        if not self.opened:
            self.urls.append(url)
            return False
        self.urls.append(resolve(url))
        query = self.respond(self.params)
        if query is not None:
            thread = threading.Thread(target=self._redirect, args=(query,), name="fake-browser")
            self._threads.append(thread)
            thread.start()
        return True

    def wait(self) -> None:
        """Join the redirect: its reply (or error) is recorded once this returns."""
        for thread in self._threads:
            thread.join(60)
            assert not thread.is_alive(), "the fake browser's GET did not end"

    def _redirect(self, query: dict[str, str]) -> None:
        redirect = urlsplit(self.params["redirect_uri"])
        try:
            self.replies.append(get(redirect.port or 80, f"{redirect.path}?{urlencode(query)}"))
        except OSError as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")


def make_request(
    endpoint: TokenEndpoint | None = None,
    *,
    ui: FakeUI | None = None,
    issuer: str = ISSUER,
    ports: tuple[int, ...] = (0,),
    flow_timeout: float = 10.0,
    metadata: dict[str, Any] | None = None,
    **kwargs: Any,
) -> FlowRequest:
    document = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": endpoint.url if endpoint else f"{issuer}/token",
        "code_challenge_methods_supported": ["S256"],
    }
    document.update(metadata or {})
    return FlowRequest(
        issuer=issuer,
        metadata=document,
        client_id=CLIENT_ID,
        scopes=("openid", "profile", "email", "offline_access"),
        nonce="nonce-abc",
        ui=ui or FakeUI(),
        http=new_session(5.0),
        settings=FlowSettings("pkce", {"pkce_timeout": flow_timeout, "callback_ports": ports}),
        http_timeout=5.0,
        **kwargs,
    )
