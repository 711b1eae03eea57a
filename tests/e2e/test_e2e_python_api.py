"""exls from Python, end to end (issue 24): logged in through the real browser flow, Python code
calls an API that checks the provider's tokens (exls_testbed.resource_server) through
exls_core.authorized_session(), in a process of its own with the environment a user's script
would have (the Secret Service, the provider, the test CA in REQUESTS_CA_BUNDLE).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import jwt
from exls_testbed.cli import ExlsCli, login_device, login_pkce, stored_session
from exls_testbed.idp import IdpServer, TlsFiles
from exls_testbed.resource_server import API_AUDIENCE, ResourceServer
from exls_testbed.secret_service import SecretService

if TYPE_CHECKING:
    from pathlib import Path

    from exls_testbed.browser import Browser

EMAIL = "alice@example.com"
API = {"EXLS_AUTH_AUDIENCE": API_AUDIENCE}  # access tokens for the API: JWTs with its aud

CALLER = r"""
import json, sys, threading
import exls_core

mode, *args = sys.argv[1:]
try:
    if mode == "token":
        out = {"token": exls_core.access_token()}
    elif mode == "get":
        with exls_core.authorized_session() as api:
            answer = api.get(args[0])
            out = {"status": answer.status_code, "body": answer.json()}
    elif mode == "threads":  # threads sharing one session, released together
        url, count = args[0], int(args[1])
        api = exls_core.authorized_session()
        start = threading.Barrier(count)
        statuses = []
        def call():
            start.wait(60)
            statuses.append(api.get(url).status_code)
        threads = [threading.Thread(target=call) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        api.close()
        out = {"statuses": statuses}
except exls_core.ExlsError as exc:
    out = {"error": type(exc).__name__, "message": str(exc)}
print(json.dumps(out))
"""


def start_python(exls: ExlsCli, *args: str) -> subprocess.Popen[str]:
    """The caller above in a fresh interpreter, with exls's environment (as a script has)."""
    return subprocess.Popen(
        [sys.executable, "-c", CALLER, *args],
        env=exls.env(API),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def answer_of(proc: subprocess.Popen[str]) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    answer: dict[str, Any] = json.loads(out)
    return answer


def python(exls: ExlsCli, *args: str) -> dict[str, Any]:
    return answer_of(start_python(exls, *args))


def log_in(
    idp: IdpServer,
    exls: ExlsCli,
    browser: Browser,
    secret_service: SecretService,
    flow: str = "pkce",
) -> dict[str, Any]:
    """`exls login` through the browser (pkce) or a device code approved in the browser."""
    idp.configure(skip_consent=True, device_interval=1)
    if flow == "pkce":
        login = login_pkce(exls, browser, EMAIL, env=API)
    else:
        login = login_device(exls, browser, EMAIL, env=API)
    assert login.result.returncode == 0, login.result.describe()
    session = stored_session(secret_service.search())
    assert session is not None
    return session


def refresh_grants(idp: IdpServer) -> list[dict[str, Any]]:
    return idp.token_grants("refresh_token")


def test_python_calls_the_api_with_the_token_of_exls_auth_token(
    idp: IdpServer,
    exls: ExlsCli,
    browser: Browser,
    secret_service: SecretService,
    resource_server: ResourceServer,
) -> None:
    session = log_in(idp, exls, browser, secret_service)

    shown = exls.run("auth", "token", "--json", env=API)
    assert shown.returncode == 0, shown.describe()
    data = shown.json()
    assert data["access_token"] == session["access_token"]
    assert data["token_type"] == "Bearer"
    assert data["expires_at"] == time.strftime(
        "%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(session["expires_at"])
    )
    assert 3000 < data["expires_in"] <= 3600

    assert python(exls, "token") == {"token": session["access_token"]}
    answer = python(exls, "get", resource_server.url + "/me")
    assert answer == {"status": 200, "body": {"sub": EMAIL, "aud": API_AUDIENCE}}
    assert [(s.token, s.status) for s in resource_server.seen] == [(session["access_token"], 200)]
    assert refresh_grants(idp) == []


def test_eight_threads_in_each_of_two_processes_across_the_expiry_cause_one_refresh(
    idp: IdpServer,
    exls: ExlsCli,
    browser: Browser,
    secret_service: SecretService,
    resource_server: ResourceServer,
) -> None:
    idp.configure(access_token_ttl=5)
    session = log_in(idp, exls, browser, secret_service)
    expired = session["access_token"]
    # Until the provider's own expiry of the login's token has passed (exp, from the token).
    exp = jwt.decode(expired, options={"verify_signature": False})["exp"]
    time.sleep(max(0.0, exp - time.time()) + 1)
    assert resource_server.check(expired) == (None, "expired")
    # The refreshed tokens are short-lived too: inside exls's one-minute refresh margin from
    # the start, so no thread may take "expires soon" as a reason to refresh once more.
    idp.configure(access_token_ttl=45)

    callers = [start_python(exls, "threads", resource_server.url + "/me", "8") for _ in "ab"]
    assert [answer_of(proc) for proc in callers] == [{"statuses": [200] * 8}] * 2
    grants = refresh_grants(idp)
    assert [g["status"] for g in grants] == [200], grants
    stored = stored_session(secret_service.search())
    assert stored is not None and stored["access_token"] != expired
    assert {(s.token, s.status) for s in resource_server.seen} == {(stored["access_token"], 200)}


def test_a_token_the_api_refuses_is_renewed_once_for_eight_threads(
    idp: IdpServer,
    exls: ExlsCli,
    browser: Browser,
    secret_service: SecretService,
    resource_server: ResourceServer,
) -> None:
    session = log_in(idp, exls, browser, secret_service, flow="device_code")
    refused = session["access_token"]
    resource_server.deny(refused)  # revoked: it still looks valid for an hour

    answer = python(exls, "threads", resource_server.url + "/me", "8")
    assert answer == {"statuses": [200] * 8}
    assert [g["status"] for g in refresh_grants(idp)] == [200]  # a real refresh, one
    stored = stored_session(secret_service.search())
    assert stored is not None
    renewed = stored["access_token"]
    assert renewed != refused and stored["refresh_token"] != session["refresh_token"]
    seen = [(s.token, s.status) for s in resource_server.seen]
    assert (refused, 401) in seen
    assert set(seen) == {(refused, 401), (renewed, 200)}
    assert seen.count((renewed, 200)) == 8  # every call replayed (or sent) with the new one
    assert python(exls, "token") == {"token": renewed}  # and exls auth token has it too


def test_a_redirect_to_another_origin_does_not_carry_the_token(
    idp: IdpServer,
    exls: ExlsCli,
    browser: Browser,
    secret_service: SecretService,
    resource_server: ResourceServer,
    other_origin: ResourceServer,
) -> None:
    session = log_in(idp, exls, browser, secret_service)
    token = session["access_token"]

    away = python(exls, "get", f"{resource_server.url}/redirect?to={other_origin.url}/me")
    assert away == {"status": 200, "body": {"recorded": True}}
    assert [(s.path, s.authorization) for s in other_origin.seen] == [("/me", None)]
    assert [(s.path, s.token) for s in resource_server.seen] == [
        (f"/redirect?to={other_origin.url}/me", token)
    ]
    # The control: a redirect within the API's origin keeps it.
    same = python(exls, "get", f"{resource_server.url}/redirect?to={resource_server.url}/me")
    assert same["status"] == 200
    assert [(s.path, s.token) for s in resource_server.seen][-1] == ("/me", token)


def test_logged_out_python_gets_the_not_logged_in_error(
    exls: ExlsCli, resource_server: ResourceServer
) -> None:
    expected = {"error": "NotLoggedIn", "message": 'You are not logged in. Run "exls login".'}
    assert python(exls, "token") == expected
    assert python(exls, "get", resource_server.url + "/me") == expected
    assert resource_server.seen == []


def test_the_resource_server_refuses_what_it_should(
    idp: IdpServer, idp_files: tuple[TlsFiles, Path], resource_server: ResourceServer
) -> None:
    """The API's checks are real: a token the provider's key signed, but expired, for another
    audience or issuer, or signed by another key, gets 401 invalid_token."""
    private = json.loads(idp_files[1].read_text())
    key = jwt.PyJWK(private).key
    now = int(time.time())
    good = {"iss": idp.issuer, "aud": API_AUDIENCE, "sub": "x", "iat": now, "exp": now + 300}

    def token(claims: dict[str, Any], signer: Any = key) -> str:
        return jwt.encode(claims, signer, algorithm="RS256", headers={"kid": private["kid"]})

    from cryptography.hazmat.primitives.asymmetric import rsa

    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert resource_server.check(token(good))[1] == ""
    assert resource_server.check(token({**good, "exp": now - 5}))[1] == "expired"
    assert (
        resource_server.check(token({**good, "aud": "https://other"}))[1] == "InvalidAudienceError"
    )
    assert resource_server.check(token({**good, "iss": "https://other"}))[1] == "InvalidIssuerError"
    assert resource_server.check(token(good, other_key))[1] == "InvalidSignatureError"

    with idp.session() as http:
        expired = token({**good, "exp": now - 5})
        answer = http.get(
            resource_server.url + "/me", headers={"Authorization": f"Bearer {expired}"}, timeout=30
        )
        assert answer.status_code == 401
        assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]
        bare = http.get(resource_server.url + "/me", timeout=30)
        assert bare.status_code == 401 and "error=" not in bare.headers["WWW-Authenticate"]
