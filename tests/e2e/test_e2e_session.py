"""The session after login, end to end: `exls auth token` refreshes, `exls logout` revokes.

Issue 7, scenarios 5 (refresh after expiry, rotated refresh token stored), 6 (ten concurrent
`auth token` refresh once), 7 (logout revokes and removes everything) and 11 (no token in
any file or in exls's output, except `auth token`'s stdout).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exls_testbed.cli import (
    ExlsCli,
    Result,
    Timings,
    login_device,
    login_pkce,
    stored_session,
)
from exls_testbed.idp import IdpServer
from exls_testbed.secret_service import SecretService

if TYPE_CHECKING:
    from exls_testbed.browser import Browser

EMAIL = "alice@example.com"
# exls refreshes when the access token expires within 60 s (session/refresh.py), so a login
# with a 30 s token is "expired" for `auth token` at once, without waiting.
SHORT_TTL = 30


def _session(secret_service: SecretService) -> dict[str, Any]:
    session = stored_session(secret_service.search())
    assert session is not None, "no session stored under service=exalsius_cli"
    return session


def _token(exls: ExlsCli) -> str:
    result = exls.run("auth", "token")
    assert result.returncode == 0, result.describe()
    assert result.stderr == "", result.describe()
    token = result.stdout.strip()
    assert token and result.stdout == token + "\n"
    return token


def _login_with_expired_token(
    idp: IdpServer, exls: ExlsCli, browser: Browser, secret_service: SecretService
) -> dict[str, Any]:
    """Log in with a token already inside the refresh margin; later tokens live an hour."""
    idp.configure(skip_consent=True, access_token_ttl=SHORT_TTL)
    login = login_pkce(exls, browser, EMAIL)
    assert login.result.returncode == 0, login.result.describe()
    idp.configure(access_token_ttl=3600)
    session = _session(secret_service)
    assert session["expires_at"] - time.time() <= SHORT_TTL
    return session


# -- 5. refresh after expiry ----------------------------------------------------------------


def test_auth_token_refreshes_an_expired_token_and_stores_the_rotated_refresh_token(
    idp: IdpServer, exls: ExlsCli, browser: Browser, secret_service: SecretService
) -> None:
    before = _login_with_expired_token(idp, exls, browser, secret_service)
    assert idp.token_grants("refresh_token") == []

    token = _token(exls)
    after = _session(secret_service)
    assert token != before["access_token"]
    assert token == after["access_token"]
    assert after["refresh_token"] != before["refresh_token"]  # rotated, and the new one kept
    assert after["expires_at"] - time.time() > 3000
    assert (after["email"], after["subject"], after["flow"]) == (
        before["email"],
        before["subject"],
        before["flow"],
    )

    (grant,) = idp.token_grants("refresh_token")
    assert grant["status"] == 200 and grant["params"]["refresh_token"] == before["refresh_token"]
    assert grant["params"]["client_id"] == idp.client_id
    old = idp.lookup(before["refresh_token"])
    assert old["kind"] == "RefreshToken" and old["consumed"] is True and old["active"] is False
    assert idp.lookup(after["refresh_token"])["active"] is True

    # The refreshed token is valid for an hour: the next call uses it as it is.
    assert _token(exls) == token
    assert len(idp.token_grants("refresh_token")) == 1

    status = exls.run("auth", "status", "--json")
    assert status.returncode == 0 and status.json()["expires_in"] > 3000


# -- 6. concurrent refresh ------------------------------------------------------------------


def test_concurrent_auth_token_calls_refresh_once(
    idp: IdpServer,
    exls: ExlsCli,
    browser: Browser,
    secret_service: SecretService,
    e2e_timings: Timings,
) -> None:
    before = _login_with_expired_token(idp, exls, browser, secret_service)

    started = time.monotonic()
    procs = [exls.start("auth", "token") for _ in range(10)]
    results = [exls.finish(proc, timeout=90) for proc in procs]
    elapsed = time.monotonic() - started
    for result in results:
        assert result.returncode == 0, result.describe()
    tokens = {result.stdout.strip() for result in results}
    assert len(tokens) == 1, f"{len(tokens)} different tokens"
    (token,) = tokens
    assert token and token != before["access_token"]

    grants = idp.token_grants("refresh_token")
    assert len(grants) == 1, [(g["status"], g["error"]) for g in grants]
    assert grants[0]["status"] == 200
    after = _session(secret_service)
    assert after["access_token"] == token and after["refresh_token"] != before["refresh_token"]
    assert idp.lookup(after["refresh_token"])["active"] is True

    e2e_timings.add(
        "auth_token_x10_concurrent_refresh",
        all_done=elapsed,
        slowest=max(r.seconds for r in results),
        fastest=min(r.seconds for r in results),
    )


# -- 7. logout ------------------------------------------------------------------------------


def test_logout_revokes_at_the_provider_and_removes_every_entry(
    idp: IdpServer, exls: ExlsCli, browser: Browser, secret_service: SecretService
) -> None:
    idp.configure(skip_consent=True)
    login = login_pkce(exls, browser, EMAIL)
    assert login.result.returncode == 0, login.result.describe()
    session = _session(secret_service)
    assert idp.lookup(session["refresh_token"])["active"] is True

    result = exls.run("logout")
    assert result.returncode == 0, result.describe()
    assert result.stderr.splitlines() == ["Logged out."], result.describe()
    assert result.stdout == ""

    revocations = idp.events("revocation")
    assert revocations, "exls did not call the revocation endpoint"
    first = revocations[0]
    assert first["status"] == 200
    assert first["params"]["token"] == session["refresh_token"]
    assert first["params"]["token_type_hint"] == "refresh_token"
    assert first["params"]["client_id"] == idp.client_id
    assert first["revoked_kind"] == "RefreshToken"
    assert idp.lookup(session["refresh_token"])["kind"] is None  # gone at the provider
    assert all(event["status"] == 200 for event in revocations)

    assert secret_service.search() == []
    assert "exalsius_cli" not in secret_service.secret_tool_search()

    again = exls.run("logout")
    assert again.returncode == 0, again.describe()
    assert again.stderr.splitlines() == ["You are not logged in."]
    assert len(idp.events("revocation")) == len(revocations)  # nothing left to revoke

    status = exls.run("auth", "status", "--json")
    assert status.returncode == 1 and status.json()["logged_in"] is False
    token = exls.run("auth", "token")
    assert token.returncode == 1 and token.stdout == ""
    assert 'You are not logged in. Run "exls login".' in token.stderr


# -- 11. no token on disk or in output ------------------------------------------------------


def _files(*roots: Path) -> list[Path]:
    found: list[Path] = []
    for root in roots:
        if root.exists():
            found += [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    return found


def _leaks(secrets: set[str], haystack: bytes) -> list[str]:
    return sorted(s[:12] + "..." for s in secrets if s.encode() in haystack)


def test_no_token_reaches_a_file_or_the_output(
    idp: IdpServer,
    exls: ExlsCli,
    browser: Browser,
    secret_service: SecretService,
) -> None:
    idp.configure(skip_consent=True, device_interval=1, access_token_ttl=SHORT_TTL)
    secrets: set[str] = set()
    token_outputs: list[Result] = []

    def collect_from_keyring() -> None:
        session = _session(secret_service)
        for name in ("access_token", "refresh_token", "id_token"):
            if session[name]:
                secrets.add(session[name])
                if session[name].count(".") == 2:  # a JWT: its signature alone is unique too
                    secrets.add(session[name].rsplit(".", 1)[1])

    def auth_token() -> None:
        result = exls.run("auth", "token")
        assert result.returncode == 0, result.describe()
        token_outputs.append(result)
        secrets.add(result.stdout.strip())

    # The whole cycle, once with each flow: login, status, token (refresh), token, logout.
    for flow in ("pkce", "device_code"):
        if flow == "pkce":
            login = login_pkce(exls, browser, EMAIL, flow="pkce")
        else:
            login = login_device(exls, browser, EMAIL, flow="device_code")
        assert login.result.returncode == 0, login.result.describe()
        collect_from_keyring()
        for args in (("auth", "status"), ("auth", "status", "--json"), ("auth", "flows")):
            assert exls.run(*args).returncode == 0
        auth_token()  # refreshes (30 s token)
        collect_from_keyring()
        auth_token()  # refreshes again: still a 30 s token
        collect_from_keyring()
        assert exls.run("logout").returncode == 0
    assert len(idp.token_grants("refresh_token", succeeded=True)) == 4

    # Secrets exls sent to the provider: codes, verifiers, device codes, refresh tokens.
    for event in idp.events():
        for name in ("code", "code_verifier", "device_code", "refresh_token", "token"):
            value = event["params"].get(name)
            if event["route"] in ("token", "revocation") and isinstance(value, str) and value:
                secrets.add(value)
    assert len(secrets) > 20

    roots = {
        "HOME (with the XDG config, cache, data and state dirs)": secret_service.home,
        "XDG_RUNTIME_DIR": Path(exls.base_env["XDG_RUNTIME_DIR"]),
        "TMPDIR": exls.tmpdir,
    }
    for key in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
        assert Path(exls.base_env[key]).is_relative_to(secret_service.home), key
    files = _files(*(root for root in roots.values() if root is not None))
    assert any("exalsius" in str(path) for path in files)  # exls did write its caches there
    for path in files:
        assert not _leaks(secrets, path.read_bytes()), f"token(s) in {path}"

    for result in exls.results:
        is_token = any(result is r for r in token_outputs)
        shown = result.stderr if is_token else result.stdout + result.stderr
        assert not _leaks(secrets, shown.encode()), f"token(s) in the output of:\n{result.args}"
