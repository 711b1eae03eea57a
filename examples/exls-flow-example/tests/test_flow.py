# tests/test_flow.py
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from exls_core.plugin import FlowEnvironment, FlowFailed, FlowRequest, FlowSettings, FlowUnavailable
from exls_flow_example import flow

VARIABLE = "EXLS_AUTH_REFRESH_IMPORT_REFRESH_TOKEN"  # the flow's setting refresh_token


def settings(environ: dict, table: dict | None = None) -> FlowSettings:
    """The flow's settings as core builds them: its variables, its [flows.refresh_import]."""
    return FlowSettings("refresh_import", environ=environ, file_table=table)


def environment(environ: dict, table: dict | None = None) -> FlowEnvironment:
    return FlowEnvironment(
        environ=environ,
        platform="linux",
        stdin_is_terminal=False,
        stderr_is_terminal=False,
        settings=settings(environ, table),
    )


def test_unavailable_without_a_token() -> None:
    with pytest.raises(FlowUnavailable, match=f"{VARIABLE} is not set"):
        flow.exls_flow_priority(environment({}))


def test_preferred_when_a_token_is_handed_over() -> None:
    available = flow.exls_flow_priority(environment({VARIABLE: "rt"}))
    assert (available.priority, available.reason) == (200, "a refresh token was handed over")
    # a token kept in config.toml counts as well (core warns that it is a secret there)
    assert flow.exls_flow_priority(environment({}, {"refresh_token": "rt"})).priority == 200


class RecordingUI:
    """The part of exls_core.plugin.UI this flow uses, recording what it is told."""

    is_terminal = False

    def __init__(self) -> None:
        self.lines: list[str] = []

    def message(self, text: str) -> None:
        self.lines.append(text)

    warning = message


@pytest.fixture
def provider():
    """A small identity provider on 127.0.0.1 (port 0, so tests never collide): discovery,
    a token endpoint that answers with whatever the test puts in `answer`, and userinfo."""
    answer: dict = {"status": 200, "body": {}}
    posted: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            issuer = f"http://127.0.0.1:{self.server.server_port}"
            if self.path == "/.well-known/openid-configuration":
                endpoints = {"token_endpoint": "/token", "jwks_uri": "/jwks"}
                endpoints["userinfo_endpoint"] = "/userinfo"
                self.reply(200, {"issuer": issuer, **{k: issuer + v for k, v in endpoints.items()}})
            elif self.path == "/userinfo":
                self.reply(200, {"sub": "alice", "email": "alice@example.com"})
            else:
                self.reply(404, {})

        def do_POST(self) -> None:
            posted.append(self.rfile.read(int(self.headers["Content-Length"])).decode())
            self.reply(answer["status"], answer["body"])

        def log_message(self, *args: object) -> None:
            pass  # keep test output clean

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", answer, posted
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def run_flow(issuer: str, refresh_token: str) -> tuple:
    ui = RecordingUI()
    with requests.Session() as http:
        request = FlowRequest(
            issuer=issuer,
            metadata={"token_endpoint": issuer + "/token"},
            client_id="test-client",
            scopes=("openid", "offline_access"),
            nonce="test-nonce",
            ui=ui,
            http=http,
            settings=settings({VARIABLE: refresh_token}),
        )
        return flow.exls_flow_run(request), ui


def test_exchanges_the_token(provider) -> None:
    issuer, answer, posted = provider
    answer["body"] = {"access_token": "at", "token_type": "Bearer", "expires_in": 3600}
    response, ui = run_flow(issuer, "handed-over")
    assert response.access_token == "at" and response.expires_in == 3600
    assert "grant_type=refresh_token" in posted[0] and "refresh_token=handed-over" in posted[0]
    assert ui.lines == ["Exchanging the imported refresh token..."]


def test_a_refusal_is_one_clear_line(provider) -> None:
    issuer, answer, _ = provider
    answer["status"], answer["body"] = 400, {"error": "invalid_grant"}
    with pytest.raises(FlowFailed) as failure:
        run_flow(issuer, "handed-over")
    refused = "The identity provider refused the imported token (invalid_grant)."
    assert failure.value.message == refused
    assert "handed-over" not in str(failure.value)


# The tests below run the real exls of this environment, sandboxed by the exls_sandbox
# fixture (see "Try it without touching your machine"): it finds the plugin exactly as
# users' installations do, through its entry point, and keeps away from your own session.
EXLS = str(Path(sys.executable).with_name("exls"))  # exls.exe on Windows


def exls(*args: str, **environ: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [EXLS, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **environ}
    )


def test_exls_finds_the_installed_flow(exls_sandbox) -> None:
    listed = exls("auth", "flows", "--json", **{VARIABLE: "rt"})
    assert json.loads(listed.stdout)["auto"] == "refresh_import"


def test_a_whole_login_in_the_sandbox(exls_sandbox, provider) -> None:
    issuer, answer, _ = provider
    answer["body"] = {"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600}
    login = exls(
        "login", "--email", "alice@example.com", EXLS_AUTH_ISSUER=issuer, **{VARIABLE: "rt"}
    )
    assert login.returncode == 0, login.stderr
    assert "Using the refresh token import: a refresh token was handed over." in login.stderr
    assert "Logged in as alice@example.com" in login.stderr
    assert exls("auth", "token", EXLS_AUTH_ISSUER=issuer).stdout.strip() == "at-1"
    assert exls("logout", EXLS_AUTH_ISSUER=issuer).returncode == 0
    assert exls("auth", "token", EXLS_AUTH_ISSUER=issuer).returncode == 1
