"""A redirect flow written the careless way: it never sends ``request.nonce``.

Authorization code with PKCE against ``request.metadata``, with a loopback listener for the
redirect; it plays the browser itself (loads the authorization URL, which the test provider
answers by calling the redirect back). It returns ``TokenResponse.from_json(body)`` and says
nothing about the nonce, as a plugin author who forgot it would. Core must refuse the login.
``EXLS_TEST_SEND_NONCE=1`` makes it send the nonce (the control case).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from exls_core.plugin import FlowFailed, TokenResponse, hookimpl


@hookimpl
def exls_flow_title() -> str:
    return "forgetful redirect"


@hookimpl
def exls_flow_priority(env: Any) -> float:
    return 1  # below everything: only ever run when named with --auth-flow


class _Redirect(BaseHTTPRequestHandler):
    query: dict[str, str] = {}

    def do_GET(self) -> None:
        _Redirect.query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@hookimpl
def exls_flow_run(request: Any) -> TokenResponse:
    import requests

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    state = secrets.token_urlsafe(16)
    with HTTPServer(("127.0.0.1", 0), _Redirect) as server:
        server.timeout = request.http_timeout  # handle_request gives up after that
        redirect_uri = f"http://127.0.0.1:{server.server_port}/callback"
        params = {
            "response_type": "code",
            "client_id": request.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(request.scopes),
            "state": state,
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
        if os.environ.get("EXLS_TEST_SEND_NONCE") == "1":
            params["nonce"] = request.nonce
        url = f"{request.metadata['authorization_endpoint']}?{urllib.parse.urlencode(params)}"
        waiter = threading.Thread(target=server.handle_request)
        waiter.start()
        with urllib.request.urlopen(url, timeout=request.http_timeout) as page:
            page.read()
        waiter.join(request.http_timeout)
    if _Redirect.query.get("state") != state or "code" not in _Redirect.query:
        raise FlowFailed("No authorization code came back.")
    answer = requests.post(
        request.metadata["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": _Redirect.query["code"],
            "redirect_uri": redirect_uri,
            "client_id": request.client_id,
            "code_verifier": verifier,
        },
        timeout=request.http_timeout,
        allow_redirects=False,
    )
    if answer.status_code != 200:
        raise FlowFailed(f"The token endpoint answered HTTP {answer.status_code}.")
    return TokenResponse.from_json(answer.json())  # not a word about the nonce
