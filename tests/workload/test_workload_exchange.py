"""The workload flow's trade at the token endpoint (RFC 8693 / RFC 7523) and its error lines.

A local fake token endpoint answers; the flow uses core's real HTTP session.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from test_workload_sources import CI_TOKEN, jwt_like

from exls_core.http import new_session
from exls_core.plugin import FlowFailed, FlowRequest, FlowSettings, NonceCheck, Workload
from exls_flows_workload import exchange
from exls_flows_workload.flow import sign_in
from testkit.http_server import FakeServer, QuietHandler

SECRET = "client-secret-0123456789"


class TokenEndpoint(QuietHandler):
    answer: tuple[int, dict[str, Any]] = (200, {})
    forms: list[dict[str, str]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:
        form = {k: v[0] for k, v in parse_qs(self.form().decode()).items()}
        with self.lock:
            self.forms.append(form)
        status, body = self.answer
        self.reply(status, json.dumps(body).encode())


@pytest.fixture
def endpoint() -> Iterator[FakeServer]:
    TokenEndpoint.forms = []
    TokenEndpoint.answer = (
        200,
        {"access_token": "at-1", "token_type": "Bearer", "expires_in": 300},
    )
    with FakeServer(TokenEndpoint) as server:
        yield server


def make_request(server: FakeServer, environ: dict[str, str] | None = None) -> FlowRequest:
    environ = {
        "EXLS_AUTH_WORKLOAD_TOKEN_ENV": "CI_JOB_JWT",
        "CI_JOB_JWT": CI_TOKEN,
        **(environ or {}),
    }
    return FlowRequest(
        issuer="https://idp.example",
        metadata={"token_endpoint": f"{server.base}/token"},
        client_id="ci-client",
        scopes=("openid", "offline_access", "read"),
        nonce="n",
        ui=None,  # type: ignore[arg-type]  # the flow never talks to a person
        http=new_session(10),
        settings=FlowSettings("workload", environ=environ),
        audience="https://api.example",
    )


def run(server: FakeServer, environ: dict[str, str] | None = None) -> Any:
    environ = {
        "EXLS_AUTH_WORKLOAD_TOKEN_ENV": "CI_JOB_JWT",
        "CI_JOB_JWT": CI_TOKEN,
        **(environ or {}),
    }
    request = make_request(server, environ)
    try:
        return sign_in(request, environ)
    finally:
        request.http.close()


def test_token_exchange_sends_rfc_8693_and_names_the_workload(endpoint: FakeServer) -> None:
    response = run(endpoint)
    assert response.access_token == "at-1" and response.nonce_check is NonceCheck.NOT_IN_PROTOCOL
    assert response.workload == Workload(
        "repo:acme/train:ref:refs/heads/main", "https://ci.example"
    )
    [form] = TokenEndpoint.forms
    assert form == {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": CI_TOKEN,
        "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
        "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "client_id": "ci-client",
        "scope": "openid read",  # no refresh token wanted: offline_access is left out
        "audience": "https://api.example",
    }


def test_the_subject_token_type_and_client_secret_are_settings(endpoint: FakeServer) -> None:
    run(
        endpoint,
        {
            "EXLS_AUTH_WORKLOAD_SUBJECT_TOKEN_TYPE": "urn:acme:github-oidc",
            "EXLS_AUTH_WORKLOAD_CLIENT_SECRET": SECRET,
        },
    )
    [form] = TokenEndpoint.forms
    assert form["subject_token_type"] == "urn:acme:github-oidc"
    assert form["client_secret"] == SECRET


def test_assertion_mode_sends_client_credentials_with_the_ci_token(endpoint: FakeServer) -> None:
    run(endpoint, {"EXLS_AUTH_WORKLOAD_MODE": "assertion"})
    [form] = TokenEndpoint.forms
    assert form["grant_type"] == "client_credentials"
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert form["client_assertion"] == CI_TOKEN
    assert form["scope"] == "read"  # no user signs in: no OpenID scopes
    assert "subject_token" not in form


def test_a_bad_mode_is_a_setting_error_before_any_request(endpoint: FakeServer) -> None:
    from exls_core.errors import ConfigError

    with pytest.raises(
        ConfigError, match="EXLS_AUTH_WORKLOAD_MODE: expected exchange or assertion"
    ):
        run(endpoint, {"EXLS_AUTH_WORKLOAD_MODE": "both"})
    assert TokenEndpoint.forms == []


TRUST = (
    "issuer https://ci.example, subject repo:acme/train:ref:refs/heads/main, "
    "audience https://idp.example"
)


@pytest.mark.parametrize(
    ("mode", "error", "expected"),
    [
        (
            "exchange",
            "invalid_grant",
            f"refused the CI token (invalid_grant: no); check that it trusts {TRUST}",
        ),
        (
            "exchange",
            "invalid_target",
            "audience https://api.example to this job (invalid_target: no); set EXLS_AUTH_AUDIENCE",
        ),
        (
            "exchange",
            "unauthorized_client",
            "Client ci-client may not use token exchange (unauthorized_client: no)",
        ),
        (
            "exchange",
            "invalid_client",
            "did not accept client ci-client (invalid_client: no); check EXLS_AUTH_CLIENT_ID "
            "and EXLS_AUTH_WORKLOAD_CLIENT_SECRET",
        ),
        (
            "assertion",
            "invalid_client",
            "refused the CI token as client assertion for ci-client (invalid_client: no); "
            f"check the federated credential: {TRUST}",
        ),
        ("assertion", "unauthorized_client", "Client ci-client may not use client_credentials"),
        (
            "exchange",
            "unsupported_grant_type",
            "refused the token exchange request (unsupported_grant_type: no)",
        ),
        (
            "exchange",
            "temporarily_unavailable",
            "The token exchange failed: the token endpoint answered "
            "temporarily_unavailable: no; try again.",
        ),
    ],
)
def test_each_refusal_is_one_line_naming_what_to_check(
    endpoint: FakeServer, mode: str, error: str, expected: str
) -> None:
    TokenEndpoint.answer = (400, {"error": error, "error_description": "no"})
    with pytest.raises(FlowFailed) as caught:
        run(endpoint, {"EXLS_AUTH_WORKLOAD_MODE": mode})
    assert expected in caught.value.message
    assert "\n" not in caught.value.message


def test_invalid_scope_names_the_scope_setting(endpoint: FakeServer) -> None:
    TokenEndpoint.answer = (400, {"error": "invalid_scope", "error_description": "read is unknown"})
    with pytest.raises(FlowFailed, match=r'"read".*EXLS_AUTH_SCOPES'):
        run(endpoint)


def test_a_provider_echoing_the_ci_token_or_secret_never_gets_it_printed(
    endpoint: FakeServer,
) -> None:
    echo = f"bad token {CI_TOKEN} with secret {SECRET}"
    TokenEndpoint.answer = (400, {"error": "invalid_grant", "error_description": echo})
    with pytest.raises(FlowFailed) as caught:
        run(endpoint, {"EXLS_AUTH_WORKLOAD_CLIENT_SECRET": SECRET})
    assert CI_TOKEN not in caught.value.message and SECRET not in caught.value.message
    assert "[redacted]" in caught.value.message


def test_the_ci_tokens_claims_reach_the_error_as_plain_text(endpoint: FakeServer) -> None:
    # The CI token is not verified by exls: its sub and iss are anyone's words.
    hostile = jwt_like(sub="repo:x\x1b]8;;https://evil.example\x07\nline two", iss="i\x1b[2J")
    TokenEndpoint.answer = (400, {"error": "invalid_grant"})
    with pytest.raises(FlowFailed) as caught:
        run(endpoint, {"CI_JOB_JWT": hostile})
    message = caught.value.message
    assert "subject repo:x" in message and "issuer i" in message
    assert not any(ord(c) < 32 or c == "\x7f" for c in message), message


def test_a_server_error_page_is_one_line(endpoint: FakeServer) -> None:
    TokenEndpoint.answer = (502, {})
    with pytest.raises(FlowFailed, match=r"answered HTTP 502; try again\.$"):
        run(endpoint)


def test_an_unreachable_token_endpoint_is_one_line() -> None:
    server = FakeServer(TokenEndpoint)
    server.server_close()
    with pytest.raises(FlowFailed, match=r"^Could not reach the token endpoint: "):
        run(server)


def test_config_repr_never_shows_the_secret(endpoint: FakeServer) -> None:
    environ = {"EXLS_AUTH_WORKLOAD_CLIENT_SECRET": SECRET}
    request = make_request(endpoint, environ)
    try:
        assert SECRET not in repr(exchange.read_config(request))
    finally:
        request.http.close()
