"""Issue 14: what standards-following providers may do, through the installed CLI.

The real provider (node-oidc-provider) is configured to behave like providers other than
itself: a device grant without an ID token, a revocation or device endpoint advertised only
in RFC 8414 metadata, issuers with a path or a trailing slash and endpoints with trailing
slashes, a client not allowed a requested scope, no refresh tokens, no device flow, and
``token_endpoint_auth_methods_supported`` without ``none``.
"""

from __future__ import annotations

import base64
import json
import re
import time
from typing import TYPE_CHECKING, Any

import pytest
from exls_testbed.cli import ExlsCli, Result, login_device, login_pkce, stored_session
from exls_testbed.idp import DEVICE_CODE_GRANT, IdpServer
from exls_testbed.secret_service import SecretService

if TYPE_CHECKING:
    from exls_testbed.browser import Browser

EMAIL = "alice@example.com"
DESKTOP = {"CI": None, "DISPLAY": ":99"}
NO_DEVICE = (
    "The identity provider does not offer device login; "
    "its metadata has no device_authorization_endpoint."
)


def _claims(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def _errors(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("Error")]


def _one_error(result: Result) -> str:
    """Exit 1, no traceback, nothing on stdout, exactly one Error line, and it is the last."""
    assert result.returncode == 1, result.describe()
    assert "Traceback" not in result.output and result.stdout == "", result.describe()
    errors = _errors(result)
    assert len(errors) == 1, result.describe()
    assert result.stderr.rstrip("\n").splitlines()[-1] == errors[0], result.describe()
    return errors[0]


def _status(exls: ExlsCli, **env: str) -> dict[str, Any]:
    result = exls.run("auth", "status", "--json", env=env)
    assert result.returncode in (0, 1), result.describe()
    status: dict[str, Any] = result.json()
    return status


# -- 1. a device grant answer without an ID token ------------------------------------------------


def test_device_login_without_id_token_uses_userinfo_then_validates_the_refreshed_id_token(
    idp: IdpServer, exls: ExlsCli, browser: Browser, secret_service: SecretService
) -> None:
    # access tokens shorter than the 60 s refresh margin: the next `auth token` refreshes.
    idp.configure(
        skip_consent=True, device_interval=1, drop_id_token=[DEVICE_CODE_GRANT], access_token_ttl=30
    )
    login = login_device(exls, browser, EMAIL)
    assert login.result.returncode == 0, login.result.describe()
    assert f"Logged in as {EMAIL}" in login.result.stderr
    (grant,) = idp.token_grants(DEVICE_CODE_GRANT, succeeded=True)
    assert "id_token" not in grant["issued"] and "access_token" in grant["issued"]
    (userinfo,) = idp.events("userinfo")
    assert userinfo["status"] == 200

    session = stored_session(secret_service.search())
    assert session is not None
    assert session["id_token"] is None and session["subject"] == EMAIL
    assert session["email"] == EMAIL
    status = _status(exls)
    assert status["logged_in"] is True and status["email"] == EMAIL

    token = exls.run("auth", "token")  # refreshes: the first ID token arrives, and is checked
    assert token.returncode == 0, token.describe()
    (refresh,) = idp.token_grants("refresh_token", succeeded=True)
    assert "id_token" in refresh["issued"]
    refreshed = stored_session(secret_service.search())
    assert refreshed is not None and refreshed["id_token"]
    assert _claims(refreshed["id_token"])["sub"] == session["subject"]
    assert token.stdout.strip() == refreshed["access_token"] != session["access_token"]


def test_code_flow_without_id_token_is_still_refused(
    idp: IdpServer, exls: ExlsCli, browser: Browser, secret_service: SecretService
) -> None:
    idp.configure(skip_consent=True, drop_id_token=["authorization_code"])
    login = login_pkce(exls, browser, EMAIL)
    error = _one_error(login.result)
    assert error == (
        "Error: ID token rejected: the token response has none, "
        "although the openid scope was requested"
    )
    assert idp.events("userinfo") == []
    assert secret_service.search() == []


# -- 2. endpoints only in the RFC 8414 metadata ------------------------------------------------


def test_revocation_and_device_endpoints_only_in_rfc8414_metadata(
    idp: IdpServer, exls: ExlsCli, browser: Browser, secret_service: SecretService
) -> None:
    idp.configure(
        skip_consent=True,
        device_interval=1,
        oauth_metadata=True,
        discovery_patch={"revocation_endpoint": None, "device_authorization_endpoint": None},
    )
    assert "revocation_endpoint" not in idp.discovery()
    login = login_device(exls, browser, EMAIL)
    assert login.result.returncode == 0, login.result.describe()
    assert "Warning" not in login.result.stderr
    assert len(idp.events("device_authorization")) == 1
    session = stored_session(secret_service.search())
    assert session is not None

    logout = exls.run("logout")
    assert logout.returncode == 0, logout.describe()
    assert logout.stderr == "Logged out.\n"
    revocations = idp.events("revocation")
    assert [event["status"] for event in revocations] == [200, 200]
    assert idp.lookup(session["refresh_token"])["active"] is False
    assert len(idp.events("oauth_metadata")) == 1  # logout used the cached, completed document
    assert secret_service.search() == []


def test_failing_rfc8414_metadata_is_one_warning_and_read_again_next_time(
    idp: IdpServer, exls: ExlsCli, browser: Browser, secret_service: SecretService
) -> None:
    idp.configure(
        skip_consent=True,
        oauth_metadata=True,
        discovery_patch={"revocation_endpoint": None},
        inject=[{"route": "oauth_metadata", "status": 503, "error": "temporarily_unavailable"}],
    )
    login = login_pkce(exls, browser, EMAIL)
    assert login.result.returncode == 0, login.result.describe()
    warnings = [line for line in login.result.stderr.splitlines() if "Warning" in line]
    where = f"https://127.0.0.1:{idp.port}/.well-known/oauth-authorization-server"
    assert warnings == [
        f"Warning: ignoring the identity provider's RFC 8414 metadata: {where} answered HTTP 503."
    ]
    logout = exls.run("logout")  # not cached after the failure: read again, and revoked
    assert logout.returncode == 0 and logout.stderr == "Logged out.\n", logout.describe()
    assert [event["status"] for event in idp.events("oauth_metadata")] == [503, 200]
    assert [event["status"] for event in idp.events("revocation")] == [200, 200]
    assert secret_service.search() == []


# -- issuers with a path, with and without a trailing slash; endpoints with trailing slashes ---


@pytest.mark.parametrize(
    ("issuer_path", "route_slash"),
    [("/o", "0"), ("/realms/acme", "1"), ("/", "0"), ("/realms/acme/", "1")],
)
def test_issuers_with_paths_and_trailing_slashes(
    issuer_path: str,
    route_slash: str,
    private_idp: IdpServer,
    exls: ExlsCli,
    browser: Browser,
    secret_service: SecretService,
) -> None:
    idp = private_idp  # restarted with other settings: its own provider, not the shared one
    idp.restart(IDP_ISSUER_PATH=issuer_path, IDP_ROUTE_SLASH=route_slash)
    exls.base_env.update(idp.exls_env())  # exls talks to this provider
    assert idp.issuer.endswith(issuer_path)
    idp.configure(skip_consent=True, device_interval=1, access_token_ttl=30)
    env = {"EXLS_AUTH_ISSUER": idp.issuer}
    if route_slash == "1":
        assert idp.discovery()["token_endpoint"].endswith("/token/")

    pkce = login_pkce(exls, browser, EMAIL, env=env)  # the redirect's iss must match exactly
    assert pkce.result.returncode == 0, pkce.result.describe()
    device = login_device(exls, browser, EMAIL, env=env)
    assert device.result.returncode == 0, device.result.describe()
    session = stored_session(secret_service.search())
    assert session is not None and session["issuer"] == idp.issuer
    assert _claims(session["id_token"])["iss"] == idp.issuer

    token = exls.run("auth", "token", env=env)  # a refresh at the token endpoint
    assert token.returncode == 0, token.describe()
    assert len(idp.token_grants("refresh_token", succeeded=True)) == 1
    logout = exls.run("logout", env=env)
    assert logout.returncode == 0 and logout.stderr == "Logged out.\n", logout.describe()
    assert [event["status"] for event in idp.events("revocation")] == [200, 200]


def test_a_configured_issuer_missing_the_trailing_slash_says_what_to_set(
    private_idp: IdpServer, exls: ExlsCli
) -> None:
    idp = private_idp  # restarted with other settings: its own provider, not the shared one
    idp.restart(IDP_ISSUER_PATH="/")
    exls.base_env.update(idp.exls_env())  # exls talks to this provider
    configured = idp.issuer.rstrip("/")
    result = exls.run(
        "login",
        "--auth-flow",
        "device_code",
        "--email",
        EMAIL,
        env={"EXLS_AUTH_ISSUER": configured},
    )
    error = _one_error(result)
    assert f"set EXLS_AUTH_ISSUER to exactly '{idp.issuer}'" in error, error
    assert idp.events("device_authorization") == []


# -- a scope the provider does not allow --------------------------------------------------------


@pytest.mark.parametrize("flow", ["device_code", "pkce"])
def test_invalid_scope_names_the_scopes_and_the_setting(
    flow: str,
    private_idp: IdpServer,
    exls: ExlsCli,
    browser: Browser,
    secret_service: SecretService,
) -> None:
    idp = private_idp  # restarted with other settings: its own provider, not the shared one
    idp.restart(IDP_CLIENT_SCOPE="openid profile email")  # offline_access is not allowed
    exls.base_env.update(idp.exls_env())  # exls talks to this provider
    idp.configure(skip_consent=True)
    if flow == "pkce":
        login = login_pkce(exls, browser, EMAIL)
        result = login.result
        (authorization,) = idp.events("authorization")
        assert "error=invalid_scope" in authorization["location"]
    else:
        result = exls.run("login", "--auth-flow", flow, "--email", EMAIL)
        (request,) = idp.events("device_authorization")
        assert request["error"] == "invalid_scope"
    error = _one_error(result)
    assert error == (
        "Error: The identity provider does not accept the requested scopes "
        '"openid profile email offline_access" (invalid_scope: requested scope is not allowed); '
        "set EXLS_AUTH_SCOPES to the scopes it allows for this client."
    )
    assert secret_service.search() == []

    fixed = login_device(exls, browser, EMAIL, env={"EXLS_AUTH_SCOPES": "openid profile email"})
    assert fixed.result.returncode == 0, fixed.result.describe()


# -- no refresh token ---------------------------------------------------------------------------


def test_without_refresh_tokens_the_session_lasts_until_expiry_then_says_log_in(
    idp: IdpServer, exls: ExlsCli, browser: Browser, secret_service: SecretService
) -> None:
    idp.configure(skip_consent=True, device_interval=1, issue_refresh_token=False)
    login = login_device(exls, browser, EMAIL)
    assert login.result.returncode == 0, login.result.describe()
    session = stored_session(secret_service.search())
    assert session is not None and session["refresh_token"] is None
    assert _status(exls)["refreshable"] is False
    token = exls.run("auth", "token")
    assert token.returncode == 0 and token.stdout.strip() == session["access_token"]

    idp.configure(access_token_ttl=1)  # a second login whose token expires at once
    again = login_device(exls, browser, EMAIL)
    assert again.result.returncode == 0, again.result.describe()
    give_up = time.monotonic() + 300  # only against a hang: the token lives one second
    while not _status(exls)["expired"]:  # waits for the expiry, whatever the machine's speed
        assert time.monotonic() < give_up
        time.sleep(0.2)
    for _ in range(2):  # and stays so: no retry loop, no refresh attempt
        expired = exls.run("auth", "token")
        assert _one_error(expired) == 'Error: Your session has expired. Run "exls login".'
    assert idp.token_grants("refresh_token") == []


# -- no device endpoint anywhere -----------------------------------------------------------------


def test_without_a_device_endpoint_device_code_fails_in_one_line_and_auto_does_not_fall_back(
    private_idp: IdpServer, exls: ExlsCli, browser: Browser
) -> None:
    idp = private_idp  # restarted with other settings: its own provider, not the shared one
    idp.restart(IDP_DEVICE_FLOW="0")
    exls.base_env.update(idp.exls_env())  # exls talks to this provider
    assert "device_authorization_endpoint" not in idp.discovery()
    explicit = exls.run("login", "--auth-flow", "device_code", "--email", EMAIL)
    assert _one_error(explicit) == f"Error: {NO_DEVICE}"
    (metadata,) = idp.events("oauth_metadata")  # RFC 8414 was asked too: none (404)
    assert metadata["status"] == 404

    env = {**DESKTOP, **browser.handoff_env(act=False), "EXLS_AUTH_PKCE_TIMEOUT": "3"}
    auto = exls.run("login", "--email", EMAIL, env=env)
    assert auto.returncode == 1 and auto.stdout == "", auto.describe()
    assert _errors(auto) == [
        "Error: Browser authentication timed out; no other login flow can run here "
        f"(device_code: {NO_DEVICE.rstrip('.')})."
    ], auto.describe()
    last = auto.stderr.rstrip("\n").splitlines()[-1]  # after the error: what to try
    assert last.startswith("Nothing came back from the browser within 0:03"), auto.describe()
    assert "device_code" not in last, auto.describe()  # this provider has no device login
    assert "Falling back" not in auto.stderr
    assert len(browser.received_urls) == 1
    assert idp.events("device_authorization") == [] and idp.events("token") == []


# -- token_endpoint_auth_methods_supported without "none" -----------------------------------------


def test_auth_methods_metadata_without_none_does_not_stop_a_public_client(
    idp: IdpServer, exls: ExlsCli, browser: Browser
) -> None:
    methods = ["client_secret_basic", "private_key_jwt"]
    idp.configure(
        skip_consent=True,
        device_interval=1,
        access_token_ttl=30,
        discovery_patch={"token_endpoint_auth_methods_supported": methods},
    )
    assert idp.discovery()["token_endpoint_auth_methods_supported"] == methods
    device = login_device(exls, browser, EMAIL)
    assert device.result.returncode == 0, device.result.describe()
    pkce = login_pkce(exls, browser, EMAIL)
    assert pkce.result.returncode == 0, pkce.result.describe()
    assert exls.run("auth", "token").returncode == 0
    assert len(idp.token_grants("refresh_token", succeeded=True)) == 1
    assert not re.search(r"Warning|Error", device.result.stderr + pkce.result.stderr)
