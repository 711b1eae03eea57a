"""The whole browser flow in-process: a fake browser follows the redirect, a local token
endpoint checks the grant (code, PKCE verifier, redirect_uri, client_id) and answers."""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import ssl
import threading
import time
import webbrowser
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from pkce_fakes import (
    CLIENT_ID,
    ISSUER,
    FakeBrowser,
    FakeUI,
    TokenEndpoint,
    make_request,
    resolve,
    serve_token_endpoint,
)

from exls_core.plugin import FlowFailed, FlowFallback, NonceCheck, TokenResponse
from exls_flows_pkce import flow

INSECURE_TRANSPORT = "OAUTHLIB_INSECURE_TRANSPORT"  # what requests-oauthlib would need set


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    with serve_token_endpoint(TokenEndpoint()) as served:
        yield served


def run(
    request: Any,
    browser: FakeBrowser,
    endpoint: TokenEndpoint | None = None,
    clock: Iterator[float] | None = None,
) -> TokenResponse:
    def opener(url: str) -> bool:
        if endpoint is not None:  # the provider learns the challenge from the authorization URL
            endpoint.challenge = resolve(url).split("code_challenge=")[1].split("&")[0]
        return browser(url)

    try:
        timing: dict[str, Any] = {} if clock is None else {"clock": lambda: next(clock)}
        return flow.run(request, opener=opener, browser_grace=0.2, connection_timeout=1.0, **timing)
    finally:
        browser.wait()


def secrets_of(endpoint: TokenEndpoint) -> list[str]:
    form = endpoint.requests[0]
    return [form["code"], form["code_verifier"]]


def test_success(endpoint: TokenEndpoint) -> None:
    ui = FakeUI()
    browser = FakeBrowser()
    response = run(
        make_request(endpoint, ui=ui, audience="https://api.test", email="a@b.c"), browser, endpoint
    )

    assert response.access_token == "AT-secret-123" and response.refresh_token == "RT-secret-456"
    assert response.id_token == "header.payload.signature"
    assert response.scope == "openid profile email offline_access"
    assert response.nonce_check is NonceCheck.REQUIRED  # core checks request.nonce

    params = browser.params
    assert params["nonce"] == "nonce-abc" and params["login_hint"] == "a@b.c"
    assert params["audience"] == "https://api.test" and params["code_challenge_method"] == "S256"
    form = endpoint.requests[0]
    assert form["grant_type"] == "authorization_code" and form["client_id"] == CLIENT_ID
    assert form["redirect_uri"] == params["redirect_uri"]
    assert "client_secret" not in form

    browser.wait()
    assert browser.replies[0].status == 200 and "You are signed in" in browser.replies[0].body
    assert ui.messages == [
        "Opening your browser...",
        f"If your browser did not open, visit: {browser.urls[0]}",
    ]
    assert ui.statuses[0].startswith("Waiting for you to sign in in your browser... 0:10 left")
    assert ui.statuses[0].endswith("(Ctrl+C to cancel)")
    assert not any(secret in ui.everything for secret in secrets_of(endpoint))


def test_the_redirect_uri_uses_the_port_actually_bound(endpoint: TokenEndpoint) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    browser = FakeBrowser()
    run(make_request(endpoint, ports=(free,)), browser, endpoint)
    assert browser.params["redirect_uri"] == f"http://127.0.0.1:{free}/callback"


def test_the_first_free_port_is_used(endpoint: TokenEndpoint) -> None:
    with socket.socket() as taken, socket.socket() as probe:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        probe.bind(("127.0.0.1", 0))
        busy, free = taken.getsockname()[1], probe.getsockname()[1]
        probe.close()
        browser = FakeBrowser()
        run(make_request(endpoint, ports=(busy, free)), browser, endpoint)
    assert browser.params["redirect_uri"] == f"http://127.0.0.1:{free}/callback"


def test_all_ports_busy_is_a_clear_error() -> None:
    with socket.socket() as first, socket.socket() as second:
        for sock in (first, second):
            sock.bind(("127.0.0.1", 0))
            sock.listen()
        ports = (first.getsockname()[1], second.getsockname()[1])
        browser = FakeBrowser()
        with pytest.raises(FlowFailed) as info:
            run(make_request(ports=ports), browser)
    assert str(info.value) == (
        f"Cannot listen for the browser's redirect: 127.0.0.1 port(s) {ports[0]}, {ports[1]} "
        "not free (Address already in use).\n"
        "Set EXLS_AUTH_CALLBACK_PORTS to free ports (0 means any free port)."
    )
    assert browser.urls == []  # the browser never opened


@pytest.mark.parametrize(
    ("other_flows", "device_hint"),
    [(("device_code",), ", or --auth-flow device_code to skip the browser"), ((), "")],
)
def test_timeout_falls_back(
    endpoint: TokenEndpoint, other_flows: tuple[str, ...], device_hint: str
) -> None:
    ui = FakeUI()
    browser = FakeBrowser(respond=lambda params: None)  # nobody comes back
    readings = iter(1000.0 + 0.5 * step for step in range(100))  # each look: half a second on
    request = make_request(endpoint, ui=ui, flow_timeout=1.2, other_flows=other_flows)
    with pytest.raises(FlowFallback) as info:
        run(request, browser, endpoint, readings)
    assert info.value.message == "Browser authentication timed out."
    assert info.value.hint == (  # what happened, and what to try: only a flow that is here
        "Nothing came back from the browser within 0:02: did it open on another machine or "
        f"display? Next time use exls login --no-browser to paste the address it ends on"
        f"{device_hint}."
    )
    assert next(readings) == 1002.5  # gave up at the first check past the 1.2 s deadline
    assert ui.updates == [  # the last update, just before the check that gave up
        "Waiting for you to sign in in your browser... 0:00 left (Ctrl+C to cancel)"
    ]
    assert endpoint.requests == []


@pytest.mark.parametrize(
    "opener_result", [False, webbrowser.Error("could not locate runnable browser"), OSError(2, "x")]
)
def test_no_browser_falls_back_at_once(opener_result: Any) -> None:
    ui = FakeUI()

    def opener(url: str) -> bool:
        if isinstance(opener_result, Exception):
            raise opener_result
        return bool(opener_result)

    started = time.monotonic()
    with pytest.raises(FlowFallback, match=r"^Could not open a browser\.$"):
        flow.run(make_request(ui=ui, can_fall_back=True), opener=opener, browser_grace=120.0)
    assert time.monotonic() - started < 60  # at once, not after the two minutes' grace
    assert ui.messages == ["Opening your browser..."]


def test_a_hung_browser_launcher_does_not_stall_the_flow(endpoint: TokenEndpoint) -> None:
    release = threading.Event()
    returned = threading.Event()
    browser = FakeBrowser()

    def hung_opener(url: str) -> bool:  # e.g. an xdg-open that never returns
        browser(url)
        release.wait(120)
        returned.set()
        return False

    endpoint.challenge = None

    def opener(url: str) -> bool:
        endpoint.challenge = resolve(url).split("code_challenge=")[1].split("&")[0]
        return hung_opener(url)

    try:
        response = flow.run(make_request(endpoint), opener=opener, browser_grace=0.2)
        assert not returned.is_set()  # logged in while the launcher still hung
    finally:
        release.set()
        browser.wait()
    assert response.access_token


def test_a_launcher_that_fails_later_falls_back() -> None:
    def opener(url: str) -> bool:  # BROWSER=some-command that ran for a while, then failed
        time.sleep(0.4)
        return False

    with pytest.raises(FlowFallback, match="Could not open a browser"):
        flow.run(make_request(flow_timeout=5, can_fall_back=True), opener=opener, browser_grace=0.1)


def test_access_denied_in_the_browser_fails(endpoint: TokenEndpoint) -> None:
    browser = FakeBrowser(
        respond=lambda p: {"error": "access_denied", "error_description": "no", "state": p["state"]}
    )
    with pytest.raises(FlowFailed, match=r"^Login was denied in the browser \(no\)\.$") as info:
        run(make_request(endpoint), browser, endpoint)
    assert not isinstance(info.value, FlowFallback)
    browser.wait()
    assert "Sign-in failed" in browser.replies[0].body
    assert endpoint.requests == []


def test_invalid_scope_in_the_redirect_names_the_setting(endpoint: TokenEndpoint) -> None:
    browser = FakeBrowser(
        respond=lambda p: {
            "error": "invalid_scope",
            "error_description": "The scope 'offline_access' is not allowed.\x1b[2J",
            "state": p["state"],
        }
    )
    request = dataclasses.replace(
        make_request(endpoint), scopes=("openid", "email", "offline_access")
    )
    with pytest.raises(FlowFailed) as info:
        run(request, browser, endpoint)
    assert not isinstance(info.value, FlowFallback)
    assert info.value.message == (
        'The identity provider does not accept the scope "offline_access" (invalid_scope: The '
        "scope 'offline_access' is not allowed. [2J); remove it from EXLS_AUTH_SCOPES, "
        'e.g. EXLS_AUTH_SCOPES="openid email".'
    )
    assert endpoint.requests == []


def test_a_forged_redirect_never_completes_the_login(endpoint: TokenEndpoint) -> None:
    browser = FakeBrowser(respond=lambda p: {"code": "the-authorization-code", "state": "forged"})
    with pytest.raises(FlowFallback, match="timed out"):
        run(make_request(endpoint, flow_timeout=0.5), browser, endpoint)
    browser.wait()
    assert browser.replies[0].status == 400
    assert endpoint.requests == []


def test_iss_mismatch_fails(endpoint: TokenEndpoint) -> None:
    browser = FakeBrowser(
        respond=lambda p: {
            "code": "the-authorization-code",
            "state": p["state"],
            "iss": "https://evil.test",
        }
    )
    with pytest.raises(FlowFailed, match="mix-up defence"):
        run(make_request(endpoint), browser, endpoint)
    assert endpoint.requests == []


def test_iss_is_required_when_discovery_advertises_it(endpoint: TokenEndpoint) -> None:
    metadata = {"authorization_response_iss_parameter_supported": True}
    with pytest.raises(FlowFailed, match="no iss parameter"):
        run(make_request(endpoint, metadata=metadata), FakeBrowser(), endpoint)

    with_iss = FakeBrowser(
        respond=lambda p: {"code": "the-authorization-code", "state": p["state"], "iss": ISSUER}
    )
    assert run(make_request(endpoint, metadata=metadata), with_iss, endpoint).access_token


def test_token_endpoint_error_fails_without_leaking_secrets(endpoint: TokenEndpoint) -> None:
    endpoint.error = {"error": "invalid_grant", "error_description": "code expired <b>\x1b[2J"}
    browser = FakeBrowser()
    with pytest.raises(FlowFailed) as info:
        run(make_request(endpoint), browser, endpoint)
    message = str(info.value)
    assert (
        message == "The identity provider refused the login: invalid_grant: code expired <b> [2J."
    )
    assert not any(secret in message + repr(info.value) for secret in secrets_of(endpoint))
    assert info.value.__cause__ is None and info.value.__suppress_context__
    browser.wait()
    assert "Sign-in failed" in browser.replies[0].body and "&lt;b&gt;" in browser.replies[0].body


def test_a_provider_echoing_the_code_still_cannot_leak_it(endpoint: TokenEndpoint) -> None:
    endpoint.error = {
        "error": "invalid_grant",
        "error_description": "bad code the-authorization-code",
    }
    with pytest.raises(FlowFailed) as info:
        run(make_request(endpoint), FakeBrowser(), endpoint)
    assert "the-authorization-code" not in str(info.value) and "[redacted]" in str(info.value)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ((500, "<html>oops</html>"), r"sent no access token \(HTTP 500\)"),
        ((200, "[1, 2]"), r"sent no token \(HTTP 200\)"),
        ((200, '{"access_token": "x", "token_type": "mac"}'), "Unsupported token_type"),
    ],
)
def test_a_broken_token_answer_fails_clearly(
    endpoint: TokenEndpoint, answer: tuple[int, str], expected: str
) -> None:
    endpoint.raw_answer = answer
    browser = FakeBrowser()
    with pytest.raises(FlowFailed, match=expected):
        run(make_request(endpoint), browser, endpoint)
    browser.wait()
    assert "Sign-in failed" in browser.replies[0].body


def test_an_unreachable_token_endpoint_fails_clearly() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/token"
    request = make_request(metadata={"token_endpoint": dead})
    with pytest.raises(FlowFailed, match=f"The code exchange failed: cannot connect to {dead}"):
        run(request, FakeBrowser())


def test_plain_http_is_refused_for_a_remote_token_endpoint() -> None:
    request = make_request(metadata={"token_endpoint": "http://idp.example.com/token"})
    with pytest.raises(FlowFailed, match="must use https"):
        run(request, FakeBrowser())


def test_loopback_http_is_allowed_only_during_the_exchange(endpoint: TokenEndpoint) -> None:
    assert INSECURE_TRANSPORT not in os.environ
    run(make_request(endpoint), FakeBrowser(), endpoint)
    assert INSECURE_TRANSPORT not in os.environ


def test_the_exchange_logs_no_secrets(
    endpoint: TokenEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        response = run(make_request(endpoint), FakeBrowser(), endpoint)
    logged = caplog.text
    for secret in [*secrets_of(endpoint), response.access_token, response.refresh_token or "x"]:
        assert secret not in logged
    assert "AT-secret" not in repr(response)


def test_a_provider_without_s256_or_authorization_endpoint_falls_back() -> None:
    with pytest.raises(FlowFallback, match="S256"):
        flow.run(make_request(metadata={"code_challenge_methods_supported": ["plain"]}))
    with pytest.raises(FlowFallback, match="no browser login"):
        flow.run(make_request(metadata={"authorization_endpoint": None}))


def test_ctrl_c_closes_the_listener_and_propagates(endpoint: TokenEndpoint) -> None:
    seen: list[str] = []

    def opener(url: str) -> bool:
        seen.append(url)
        return True

    class Interrupting(FakeUI):
        def message(self, text: str) -> None:
            super().message(text)
            if text.startswith("If your browser"):
                raise KeyboardInterrupt

    ui = Interrupting()
    with pytest.raises(KeyboardInterrupt):
        flow.run(make_request(endpoint, ui=ui), opener=opener, browser_grace=0.1)
    handed = urlsplit(seen[0])  # the listener's /start (Linux), or the authorization URL
    if handed.path == "/start":
        port = handed.port
    else:
        port = int(seen[0].split("127.0.0.1%3A")[1].split("%2F")[0])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_https_provider_with_a_test_ca(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))

    with serve_token_endpoint(TokenEndpoint(), tls=server_context) as served:
        issuer = served.url.removesuffix("/token")
        request = make_request(served, issuer=issuer)
        assert request.metadata["token_endpoint"].startswith("https://127.0.0.1:")
        assert run(request, FakeBrowser(), served).access_token == "AT-secret-123"
        assert INSECURE_TRANSPORT not in os.environ

    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    with (
        serve_token_endpoint(TokenEndpoint(), tls=server_context) as served,
        pytest.raises(FlowFailed, match="TLS verification failed"),
    ):  # the test CA is no longer trusted
        run(make_request(served), FakeBrowser(), served)


def test_the_page_says_signed_in_only_after_core_accepted_the_tokens(
    endpoint: TokenEndpoint,
) -> None:
    from exls_core.errors import ExlsError

    checked: list[TokenResponse] = []

    def refuse(response: TokenResponse) -> None:
        checked.append(response)
        raise ExlsError("ID token rejected: nonce mismatch")

    browser = FakeBrowser()
    with pytest.raises(ExlsError, match="nonce mismatch"):
        run(make_request(endpoint, check_tokens=refuse), browser, endpoint)
    browser.wait()
    assert len(checked) == 1 and checked[0].nonce_check is NonceCheck.REQUIRED
    assert "Sign-in failed" in browser.replies[0].body
    assert "nonce mismatch" in browser.replies[0].body
    assert "You are signed in" not in browser.replies[0].body
