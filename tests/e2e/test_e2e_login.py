"""`exls login` end to end: the installed CLI, the real provider, Secret Service and browser.

Issue 7, scenarios 1-4 (PKCE, device code, auto without a display, fallback after the PKCE
timeout), 8 (consent denied) and 10 (SSO domain routes). Every login runs the `exls` console
script as a subprocess; the browser plays the user.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from exls_testbed.cli import (
    LOGGED_IN,
    ExlsCli,
    Timings,
    device_timing,
    login_device,
    login_pkce,
    pkce_timing,
    secrets_snapshot,
    stored_session,
)
from exls_testbed.idp import DEVICE_CODE_GRANT, IdpServer
from exls_testbed.secret_service import SecretService

if TYPE_CHECKING:
    from exls_testbed.browser import Browser

EMAIL = "alice@example.com"
SERVICE = "exalsius_cli"
# auto with a graphical session: no CI, a display, and BROWSER (the browser handoff) set.
DESKTOP = {"CI": None, "DISPLAY": ":99"}
# What happened and what to try, then the fallback (EXLS_AUTH_PKCE_TIMEOUT=3 in that test).
FALLBACK_LINE = (
    "Browser authentication timed out. Nothing came back from the browser within 0:03: did it "
    "open on another machine or display? Next time use exls login --no-browser to paste the "
    "address it ends on, or --auth-flow device_code to skip the browser. "
    "Falling back to device code flow..."
)


def _claims(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _status(exls: ExlsCli) -> dict[str, Any]:
    result = exls.run("auth", "status", "--json")
    assert result.returncode == 0, result.describe()
    status: dict[str, Any] = result.json()
    return status


def _assert_stored(secret_service: SecretService, email: str, flow: str) -> dict[str, Any]:
    items = secret_service.search()
    assert items, "nothing stored under service=exalsius_cli"
    assert all(item.attributes["service"] == SERVICE for item in items)
    session = stored_session(items)
    assert session is not None, [item.attributes for item in items]
    assert session["email"] == email and session["flow"] == flow
    assert session["access_token"] and session["refresh_token"] and session["id_token"]
    return session


# -- 1. PKCE ---------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["explicit", "auto"])
def test_pkce_login(
    how: str,
    idp: IdpServer,
    exls: ExlsCli,
    browser: Browser,
    secret_service: SecretService,
    e2e_timings: Timings,
) -> None:
    idp.configure(skip_consent=True)
    if how == "auto":
        env = {**DESKTOP, **browser.handoff_env(login=EMAIL)}
        flows = exls.run("auth", "flows", "--json", env=env)
        assert flows.returncode == 0, flows.describe()
        assert flows.json()["auto"] == "pkce"
        login = login_pkce(exls, browser, EMAIL, flow=None, env=DESKTOP)
    else:  # named explicitly it runs even under CI=true, where auto would not pick it
        login = login_pkce(exls, browser, EMAIL, flow="pkce")
    result = login.result
    assert result.returncode == 0, result.describe()
    assert f"Logged in as {EMAIL}" in result.output
    assert "Falling back" not in result.stderr
    assert login.browser is not None and login.browser.query.get("code")
    assert len(browser.received_urls) == 1  # exls opened the browser once, through BROWSER

    (authorization,) = idp.events("authorization")
    params = authorization["params"]
    assert params["code_challenge_method"] == "S256"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", params["code_challenge"])
    assert len(params["state"]) >= 16 and len(params["nonce"]) >= 16
    assert params["login_hint"] == EMAIL
    assert params["client_id"] == idp.client_id and params["response_type"] == "code"
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/callback", params["redirect_uri"])
    assert "offline_access" in params["scope"].split()
    (exchange,) = idp.token_grants("authorization_code")
    assert exchange["status"] == 200
    assert _s256(exchange["params"]["code_verifier"]) == params["code_challenge"]
    assert exchange["params"]["redirect_uri"] == params["redirect_uri"]

    session = _assert_stored(secret_service, EMAIL, "pkce")
    assert _claims(session["id_token"])["nonce"] == params["nonce"]
    status = _status(exls)
    assert status["logged_in"] is True and status["email"] == EMAIL
    assert status["flow"] == "pkce" and status["refreshable"] is True
    assert "SecretService" in status["keyring_backend"]

    e2e_timings.add(f"pkce_login[{how}]", **pkce_timing(idp, login))


# -- 2. device code --------------------------------------------------------------------------


def test_device_code_login(
    idp: IdpServer,
    exls: ExlsCli,
    browser: Browser,
    secret_service: SecretService,
    e2e_timings: Timings,
) -> None:
    idp.configure(skip_consent=True, device_interval=1)
    # The address piped on stdin, as scripts do: echo alice@example.com | exls login ...
    login = login_device(exls, browser, EMAIL, flow="device_code", email_on_stdin=True)
    result = login.result
    assert result.returncode == 0, result.describe()
    assert f"Logged in as {EMAIL}" in result.stderr
    assert login.browser is not None
    assert login.browser.steps[:2] == ["user_code", "confirm"]  # the code was typed in
    assert login.browser.steps[-1] == "success"
    assert browser.received_urls == []  # no browser was opened on this machine
    assert "QR" not in result.stderr  # not a terminal: plain lines only

    (request,) = idp.events("device_authorization")
    assert request["params"]["client_id"] == idp.client_id
    assert request["params"]["login_hint"] == EMAIL
    assert "offline_access" in request["params"]["scope"].split()
    assert idp.events("authorization") == []
    assert len(idp.token_grants(DEVICE_CODE_GRANT, succeeded=True)) == 1
    assert not [g for g in idp.token_grants(DEVICE_CODE_GRANT) if g["error"] == "slow_down"]

    _assert_stored(secret_service, EMAIL, "device_code")
    status = _status(exls)
    assert status["email"] == EMAIL and status["flow"] == "device_code"

    e2e_timings.add("device_code_login", **device_timing(idp, login))


# -- 3. auto without a display ----------------------------------------------------------------


def test_auto_without_display_or_browser_uses_device_code(
    idp: IdpServer, exls: ExlsCli, browser: Browser, secret_service: SecretService
) -> None:
    idp.configure(skip_consent=True, device_interval=1)
    headless = {"CI": None}  # the fixture's env has no DISPLAY, WAYLAND_DISPLAY or BROWSER
    assert not {"DISPLAY", "WAYLAND_DISPLAY", "BROWSER"} & exls.env(headless).keys()

    flows = exls.run("auth", "flows", "--json", env=headless)
    assert flows.returncode == 0, flows.describe()
    listed = flows.json()
    assert listed["auto"] == "device_code"
    pkce = next(row for row in listed["flows"] if row["id"] == "pkce")
    assert pkce["status"] == "unavailable" and "display" in pkce["reason"]

    login = login_device(exls, browser, EMAIL, flow=None, env=headless)
    assert login.result.returncode == 0, login.result.describe()
    assert f"Logged in as {EMAIL}" in login.result.stderr
    assert "If your browser did not open" not in login.result.stderr
    assert idp.events("authorization") == []  # PKCE never started
    assert len(idp.events("device_authorization")) == 1
    assert _status(exls)["flow"] == "device_code"


# -- 4. auto falls back when the browser never opens -------------------------------------------


def test_auto_falls_back_to_device_code_after_pkce_timeout(
    idp: IdpServer,
    exls: ExlsCli,
    browser: Browser,
    secret_service: SecretService,
    e2e_timings: Timings,
) -> None:
    idp.configure(skip_consent=True, device_interval=1)
    # A BROWSER command that exits 0 but opens nothing: PKCE waits, times out, falls back.
    env = {
        **DESKTOP,
        **browser.handoff_env(act=False),
        "EXLS_AUTH_PKCE_TIMEOUT": "3",
    }
    flows = exls.run("auth", "flows", "--json", env=env)
    assert flows.json()["auto"] == "pkce"

    proc = exls.start("login", "--email", EMAIL, env=env)
    fallback = proc.wait_for(re.escape(FALLBACK_LINE), timeout=30)
    assert fallback.group(0) == FALLBACK_LINE
    login = login_device(exls, browser, EMAIL, proc=proc)
    result = login.result
    assert result.returncode == 0, result.describe()
    assert f"Logged in as {EMAIL}" in result.stderr

    lines = result.stderr.splitlines()
    assert lines.count(FALLBACK_LINE) == 1
    assert lines.index(FALLBACK_LINE) < lines.index(f"Logged in as {EMAIL}")
    waited = result.line_time(re.escape(FALLBACK_LINE)) - result.line_time("If your browser")
    assert 2 <= waited <= 10, f"fell back after {waited:.1f} s with a 3 s PKCE timeout"
    assert len(browser.received_urls) == 1
    handed = urlsplit(browser.received_urls[0])  # the listener's /start (issue 23, item 8)
    assert (handed.hostname, handed.path) == ("127.0.0.1", "/start"), browser.received_urls
    assert "state=" not in handed.query and "code_challenge=" not in handed.query
    assert idp.events("authorization") == []  # the browser really never came
    assert len(idp.events("device_authorization")) == 1
    _assert_stored(secret_service, EMAIL, "device_code")
    assert _status(exls)["flow"] == "device_code"

    e2e_timings.add("pkce_timeout_fallback", pkce_wait=waited, **device_timing(idp, login))


# -- 8. consent denied --------------------------------------------------------------------------


def test_denied_consent_fails_clearly_and_keeps_the_previous_session(
    idp: IdpServer, exls: ExlsCli, browser: Browser, secret_service: SecretService
) -> None:
    idp.configure(skip_consent=True)
    first = login_pkce(exls, browser, EMAIL)
    assert first.result.returncode == 0, first.result.describe()
    before = secrets_snapshot(secret_service.search())
    status_before = _status(exls)

    # The consent screen comes back; the browser still has the provider session (no login
    # page), and the user cancels on the consent page.
    idp.configure(skip_consent=False)
    denied = login_pkce(exls, browser, EMAIL, deny=True, fresh_session=False)
    result = denied.result
    assert denied.browser is not None and denied.browser.pages == ["consent"]
    assert denied.browser.query.get("error") == "access_denied"
    assert result.returncode == 1, result.describe()
    assert "Traceback" not in result.output and result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert errors == ["Error: Login was denied in the browser (End-User aborted interaction)."], (
        result.stderr
    )
    assert result.stderr.rstrip("\n").splitlines()[-1] == errors[0]  # the last word, no noise
    assert not LOGGED_IN.search(result.stderr)
    assert not idp.token_grants("authorization_code")[1:]  # no second code exchange

    assert secrets_snapshot(secret_service.search()) == before
    status_after = _status(exls)
    for status in (status_before, status_after):
        del status["expires_in"]  # counts down between the two calls
    assert status_after == status_before


def test_denied_device_code_fails_clearly_and_keeps_the_previous_session(
    idp: IdpServer, exls: ExlsCli, browser: Browser, secret_service: SecretService
) -> None:
    idp.configure(skip_consent=True, device_interval=1)
    first = login_device(exls, browser, EMAIL)
    assert first.result.returncode == 0, first.result.describe()
    before = secrets_snapshot(secret_service.search())

    denied = login_device(exls, browser, "bob@example.com", deny=True)
    result = denied.result
    assert denied.browser is not None and denied.browser.pages == ["user_code", "confirm"]
    assert result.returncode == 1, result.describe()
    assert "Traceback" not in result.output and result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert errors == ["Error: Login was denied."], result.stderr
    assert result.stderr.rstrip("\n").splitlines()[-1] == errors[0]
    assert idp.token_grants(DEVICE_CODE_GRANT)[-1]["error"] == "access_denied"

    assert secrets_snapshot(secret_service.search()) == before
    assert _status(exls)["email"] == EMAIL


# -- 10. SSO routing by email domain ------------------------------------------------------------


def test_sso_domain_route_reaches_the_provider(
    idp: IdpServer,
    exls: ExlsCli,
    browser: Browser,
    secret_service: SecretService,
) -> None:
    idp.configure(skip_consent=True, device_interval=1)
    config = secret_service.home / ".config" / "exalsius" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        '[auth.sso_domains]\n"acme.com" = { name = "Acme Okta", connection = "acme-okta" }\n'
    )
    email = "bob@acme.com"
    announcement = "Signing in with Acme Okta (acme.com)"

    pkce = login_pkce(exls, browser, email, flow="pkce")
    assert pkce.result.returncode == 0, pkce.result.describe()
    assert announcement in pkce.result.stderr.splitlines()
    (authorization,) = idp.events("authorization")
    assert authorization["params"]["connection"] == "acme-okta"
    assert authorization["params"]["login_hint"] == email

    device = login_device(exls, browser, email, flow="device_code")
    assert device.result.returncode == 0, device.result.describe()
    assert announcement in device.result.stderr.splitlines()
    (request,) = idp.events("device_authorization")
    assert request["params"]["connection"] == "acme-okta"
    assert request["params"]["login_hint"] == email

    assert f"Logged in as {email}" in device.result.stderr
    assert _status(exls)["email"] == email
