"""The test bed itself works, without exls: provider over TLS, Secret Service, browser logins."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
from exls_testbed.idp import DEVICE_CODE_GRANT, IdpServer
from exls_testbed.secret_service import SecretService

from testkit.http_server import FakeServer, QuietHandler

if TYPE_CHECKING:  # selenium is imported by the fixture, which skips/fails cleanly without it
    from exls_testbed.browser import Browser

pytestmark = pytest.mark.e2e


def _jwt_claims(token: str) -> dict[str, Any]:
    """Payload of a JWT, unverified (the CLI's own tests check signatures)."""
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


@contextmanager
def loopback_listener() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A tiny RFC 8252 redirect listener on 127.0.0.1:<free port>; yields (redirect_uri, hits)."""
    hits: list[dict[str, str]] = []

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/callback":  # Chromium also asks for /favicon.ico
                self.send_error(404)
                return
            hits.append(dict(parse_qsl(url.query)))
            page = b"<html><title>done</title><body>You can close this tab.</body></html>"
            self.reply(200, page, "text/html")

    with FakeServer(Handler, name="loopback-listener") as server:
        yield f"{server.base}/callback", hits


def test_discovery_over_tls(idp: IdpServer) -> None:
    response = requests.get(
        f"{idp.issuer}/.well-known/openid-configuration", verify=str(idp.ca_path), timeout=10
    )
    response.raise_for_status()
    doc = response.json()
    assert doc["issuer"] == idp.issuer
    assert not idp.issuer.endswith("/")
    assert doc["device_authorization_endpoint"] == f"{idp.issuer}/device/auth"
    assert doc["revocation_endpoint"] == f"{idp.issuer}/token/revocation"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    # Without the test CA the certificate is rejected: TLS verification is real.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{idp.issuer}/.well-known/openid-configuration", verify=True, timeout=10)


def test_secret_service_backs_keyring(secret_service: SecretService) -> None:
    probe = (
        "import keyring; keyring.set_password('exalsius_cli', 'probe', 'x'); "
        "print(type(keyring.get_keyring()).__module__); "
        "print(keyring.get_password('exalsius_cli', 'probe'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env=secret_service.subprocess_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["keyring.backends.SecretService", "x"]

    items = secret_service.search()
    assert [(item.attributes["username"], item.secret) for item in items] == [("probe", "x")]
    assert "attribute.username = probe" in secret_service.secret_tool_search()

    # Failure modes a CLI test can use: a locked collection, and no Secret Service at all.
    secret_service.lock()
    locked = subprocess.run(
        [sys.executable, "-c", probe],
        env=secret_service.subprocess_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert locked.returncode != 0 and "KeyringLocked" in locked.stderr
    gone = subprocess.run(
        [sys.executable, "-c", probe],
        env=secret_service.subprocess_env(SecretService.unavailable_env(secret_service.root)),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert gone.returncode != 0 and "NoKeyringError" in gone.stderr


def _pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    return verifier, challenge


def test_authorization_code_pkce_via_browser_handoff(idp: IdpServer, browser: Browser) -> None:
    verifier, challenge = _pkce_pair()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    with loopback_listener() as (redirect_uri, hits):
        url = f"{idp.issuer}/auth?" + urlencode(
            {
                "client_id": idp.client_id,
                "response_type": "code",
                "redirect_uri": redirect_uri,
                "scope": "openid profile email offline_access",
                "state": state,
                "nonce": nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "login_hint": "carol@example.com",
                # Auth0-style extras must be accepted, not rejected.
                "audience": "https://api.example.test",
                "connection": "google-oauth2",
                "organization": "org_123",
            }
        )
        # Exactly what the CLI does: Python's webbrowser with BROWSER set.
        opened = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, webbrowser; sys.exit(0 if webbrowser.open(sys.argv[1]) else 1)",
                url,
            ],
            env={
                "BROWSER": browser.handoff_command(login="carol@example.com"),
                "PATH": "/usr/bin:/bin",
            },
            timeout=30,
            check=False,
        )
        assert opened.returncode == 0
        result = browser.wait_for_login(timeout=60)
        assert result.steps == ["login", "consent", "left-provider"]
        assert result.final_url.startswith(redirect_uri)

    assert len(hits) == 1
    callback = hits[0]
    assert callback["state"] == state
    assert callback["iss"] == idp.issuer  # RFC 9207

    http = idp.session()
    token_url = idp.discovery()["token_endpoint"]
    tokens = http.post(
        token_url,
        data={
            "grant_type": "authorization_code",
            "code": callback["code"],
            "redirect_uri": redirect_uri,
            "client_id": idp.client_id,
            "code_verifier": verifier,
        },
        timeout=10,
    ).json()
    assert {"access_token", "id_token", "refresh_token"} <= tokens.keys(), tokens
    assert tokens["expires_in"] == 3600
    claims = _jwt_claims(tokens["id_token"])
    assert claims["email"] == "carol@example.com"
    assert (
        claims["iss"] == idp.issuer and claims["aud"] == idp.client_id and claims["nonce"] == nonce
    )

    refreshed = http.post(
        token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": idp.client_id,
        },
        timeout=10,
    ).json()
    assert "access_token" in refreshed and "id_token" in refreshed, refreshed
    assert refreshed["refresh_token"] != tokens["refresh_token"]  # rotation for public clients
    assert idp.lookup(tokens["refresh_token"])["active"] is False
    assert idp.lookup(refreshed["refresh_token"])["active"] is True

    (authorization,) = idp.events("authorization")
    assert authorization["params"]["code_challenge_method"] == "S256"
    assert authorization["params"]["login_hint"] == "carol@example.com"
    assert authorization["params"]["audience"] == "https://api.example.test"
    assert len(idp.token_grants("authorization_code", succeeded=True)) == 1
    assert len(idp.token_grants("refresh_token", succeeded=True)) == 1

    # Revocation (RFC 7009) is recorded with its hint, and the token is gone.
    revoked = http.post(
        idp.discovery()["revocation_endpoint"],
        data={
            "token": refreshed["refresh_token"],
            "token_type_hint": "refresh_token",
            "client_id": idp.client_id,
        },
        timeout=10,
    )
    assert revoked.status_code == 200
    (revocation,) = idp.events("revocation")
    assert revocation["params"]["token_type_hint"] == "refresh_token"
    assert revocation["revoked_kind"] == "RefreshToken"
    assert idp.lookup(refreshed["refresh_token"])["kind"] is None


def test_authorization_denied_in_browser(idp: IdpServer, browser: Browser) -> None:
    _, challenge = _pkce_pair()
    with loopback_listener() as (redirect_uri, hits):
        url = f"{idp.issuer}/auth?" + urlencode(
            {
                "client_id": idp.client_id,
                "response_type": "code",
                "redirect_uri": redirect_uri,
                "scope": "openid email",
                "state": "s1",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        result = browser.complete_login(url, deny=True)
    assert result.steps == ["abort", "left-provider"]
    assert hits == [
        {
            "error": "access_denied",
            "error_description": "End-User aborted interaction",
            "state": "s1",
            "iss": idp.issuer,
        }
    ]


def _poll(
    http: requests.Session, token_url: str, device_code: str, client_id: str
) -> dict[str, Any]:
    response = http.post(
        token_url,
        data={
            "grant_type": DEVICE_CODE_GRANT,
            "device_code": device_code,
            "client_id": client_id,
        },
        timeout=10,
    )
    body: dict[str, Any] = response.json()
    return body


def test_device_code_approved_in_browser(idp: IdpServer, browser: Browser) -> None:
    idp.configure(device_interval=1, slow_down_increment=1)  # fast polling for tests
    http = idp.session()
    doc = idp.discovery()
    grant = http.post(
        doc["device_authorization_endpoint"],
        data={
            "client_id": idp.client_id,
            "scope": "openid email offline_access",
            "audience": "https://api.example.test",
        },
        timeout=10,
    ).json()
    assert grant["interval"] == 1 and grant["expires_in"] == 600
    assert grant["verification_uri_complete"].startswith(grant["verification_uri"])

    assert (
        _poll(http, doc["token_endpoint"], grant["device_code"], idp.client_id)["error"]
        == "authorization_pending"
    )
    # Polling faster than the interval is answered with slow_down (RFC 8628 3.5).
    assert (
        _poll(http, doc["token_endpoint"], grant["device_code"], idp.client_id)["error"]
        == "slow_down"
    )

    result = browser.approve_device_code(
        grant["verification_uri"], grant["user_code"], login="dave"
    )
    assert result.steps == ["user_code", "confirm", "login", "consent", "success"]

    interval = 1 + 1  # after one slow_down (slow_down_increment=1)
    deadline = time.monotonic() + 30
    while True:
        time.sleep(interval)
        tokens = _poll(http, doc["token_endpoint"], grant["device_code"], idp.client_id)
        if tokens.get("error") != "authorization_pending" or time.monotonic() > deadline:
            break
    assert {"access_token", "id_token", "refresh_token"} <= tokens.keys(), tokens
    assert _jwt_claims(tokens["id_token"])["email"] == "dave@example.com"
    # An audience makes the access token a JWT for that API (Auth0-like); scope keeps OIDC scopes.
    assert _jwt_claims(tokens["access_token"])["aud"] == "https://api.example.test"
    assert set(tokens["scope"].split()) >= {"openid", "email", "offline_access"}

    (request,) = idp.events("device_authorization")
    assert request["params"]["audience"] == "https://api.example.test"
    polls = [event["error"] for event in idp.token_grants(DEVICE_CODE_GRANT)]
    assert polls == ["authorization_pending", "slow_down", None]


def test_device_code_denied_in_browser(idp: IdpServer, browser: Browser) -> None:
    idp.configure(device_interval=1, enforce_slow_down=False)
    http = idp.session()
    doc = idp.discovery()
    grant = http.post(
        doc["device_authorization_endpoint"],
        data={
            "client_id": idp.client_id,
            "scope": "openid email",
        },
        timeout=10,
    ).json()
    # verification_uri_complete carries the code: the browser only confirms (here: aborts).
    result = browser.approve_device_code(grant["verification_uri_complete"], deny=True)
    assert "abort" in result.steps
    assert (
        _poll(http, doc["token_endpoint"], grant["device_code"], idp.client_id)["error"]
        == "access_denied"
    )


def test_runtime_settings_and_faults(idp: IdpServer, browser: Browser) -> None:
    """The knobs CLI tests rely on: short TTLs, no consent screen, injected faults."""
    idp.configure(access_token_ttl=5, skip_consent=True, device_interval=1)
    http = idp.session()
    doc = idp.discovery()
    grant = http.post(
        doc["device_authorization_endpoint"],
        data={
            "client_id": idp.client_id,
            "scope": "openid email offline_access",
        },
        timeout=10,
    ).json()
    result = browser.approve_device_code(
        grant["verification_uri_complete"], login="erin@example.org"
    )
    assert result.steps == ["confirm", "login", "success"]  # skip_consent: no consent page
    tokens = _poll(http, doc["token_endpoint"], grant["device_code"], idp.client_id)
    assert tokens["expires_in"] == 5 and "refresh_token" in tokens, tokens
    assert _jwt_claims(tokens["id_token"])["email"] == "erin@example.org"

    def refresh(token: str) -> requests.Response:
        return http.post(
            doc["token_endpoint"],
            data={
                "grant_type": "refresh_token",
                "refresh_token": token,
                "client_id": idp.client_id,
            },
            timeout=10,
        )

    idp.configure(
        inject=[
            {
                "route": "token",
                "grant_type": "refresh_token",
                "status": 503,
                "error": "temporarily_unavailable",
            }
        ]
    )
    failed = refresh(tokens["refresh_token"])
    assert failed.status_code == 503 and failed.json()["error"] == "temporarily_unavailable"
    assert idp.token_grants("refresh_token")[-1]["injected"] is True

    rotated = refresh(tokens["refresh_token"]).json()  # the fault was consumed
    assert _jwt_claims(rotated["id_token"])["email"] == "erin@example.org"
    reused = refresh(tokens["refresh_token"])  # a rotated-out refresh token is dead
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    # ... and reusing it revokes the whole grant, the new refresh token included (RFC 9700 4.14).
    assert idp.lookup(rotated["refresh_token"])["kind"] is None
    assert [(e["status"], e["error"]) for e in idp.token_grants("refresh_token")] == [
        (503, "temporarily_unavailable"),
        (200, None),
        (400, "invalid_grant"),
    ]


def test_restart_keeps_issuer_and_key_and_applies_startup_settings(
    private_idp: IdpServer,
) -> None:
    issuer = private_idp.issuer
    with private_idp.session() as http:
        keys = http.get(private_idp.discovery()["jwks_uri"], timeout=30).json()
    old_pid = private_idp.pid
    private_idp.restart(IDP_ACCESS_TOKEN_TTL=7)
    assert private_idp.pid != old_pid  # a new process ...
    assert private_idp.issuer == issuer and private_idp.discovery()["issuer"] == issuer
    with private_idp.session() as http:  # ... with the run's one signing key
        assert http.get(private_idp.discovery()["jwks_uri"], timeout=30).json() == keys
    assert private_idp.configure()["access_token_ttl"] == 7
