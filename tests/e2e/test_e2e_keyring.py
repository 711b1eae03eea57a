"""When the Secret Service is missing, locked or hung, end to end (issue 7, scenario 12).

exls must say `Failed to store token` / `Failed to load token` with the fix, exit 1, and
never hang: every keyring call is bounded by EXLS_KEYRING_TIMEOUT (default 10 s).

These are the keyring store's failures, so the store is named (EXLS_SESSION_STORE=keyring;
where no Secret Service answers, auto would keep the session in the kernel keyring, see
test_e2e_headless_kernel.py) and the token cache is off (it would answer `auth token`
without asking the keyring).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from exls_testbed.cli import ExlsCli, Result, login_pkce
from exls_testbed.idp import IdpServer
from exls_testbed.secret_service import SecretService

if TYPE_CHECKING:
    from exls_testbed.browser import Browser

EMAIL = "alice@example.com"

DBUS_REPLY_TIMEOUT = 25.0  # seconds libdbus waits for a reply by default


@pytest.fixture(autouse=True)
def _keyring_store(exls: ExlsCli) -> None:
    exls.base_env.update(EXLS_SESSION_STORE="keyring", EXLS_TOKEN_CACHE="0")


def _assert_keyring_failure(result: Result, headline: str) -> None:
    assert result.returncode == 1, result.describe()
    assert result.stdout == "", result.describe()  # no token, no partial data
    assert "Traceback" not in result.stderr, result.describe()
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith(f"Error: {headline}"), result.describe()
    # The fix, as authentication.md's troubleshooting section gives it.
    fix = result.stderr.split(errors[0], 1)[1]
    for words in ("Secret Service", "PYTHON_KEYRING_BACKEND", "EXLS_SESSION_STORE=kernel"):
        assert words in fix, f"the fix does not mention {words}:\n{result.stderr}"


def _logged_in(idp: IdpServer, exls: ExlsCli, browser: Browser) -> None:
    idp.configure(skip_consent=True)
    login = login_pkce(exls, browser, EMAIL)
    assert login.result.returncode == 0, login.result.describe()
    assert exls.run("auth", "token").returncode == 0


def test_login_without_a_keyring_fails_to_store_with_the_fix(
    idp: IdpServer,
    exls: ExlsCli,
    browser: Browser,
    secret_service: SecretService,
    tmp_path: Path,
) -> None:
    idp.configure(skip_consent=True)
    nowhere = SecretService.unavailable_env(tmp_path)
    proc = exls.start(
        "login", "--auth-flow", "pkce", "--email", EMAIL, env={**nowhere, **browser.handoff_env()}
    )
    result = exls.finish(proc, 30)
    _assert_keyring_failure(result, "Failed to store token")
    assert "Logged in as" not in result.stderr
    # Checked before the flow: nobody is sent through a sign-in whose tokens cannot be kept.
    assert browser.received_urls == []
    assert idp.events("authorization") == []


def test_status_json_reports_an_unavailable_keyring(exls: ExlsCli, tmp_path: Path) -> None:
    status = exls.run("auth", "status", "--json", env=SecretService.unavailable_env(tmp_path))
    assert status.returncode == 1, status.describe()
    data = json.loads(status.stdout)
    assert data["logged_in"] is False
    # keyring falls back to its "fail" backend when no Secret Service answers.
    assert data["keyring_backend"] == "keyring.backends.fail.Keyring", data
    assert data["keyring_error"].startswith("Failed to load token"), data


def test_locked_keyring_fails_to_load_in_bounded_time(
    idp: IdpServer, exls: ExlsCli, browser: Browser, secret_service: SecretService
) -> None:
    _logged_in(idp, exls, browser)
    secret_service.lock()

    result = exls.run("auth", "token", timeout=30)
    _assert_keyring_failure(result, "Failed to load token")
    assert "locked" in result.stderr
    # Bounded: well below D-Bus's 25 s reply timeout (generous: the machine may be busy).
    assert result.seconds < DBUS_REPLY_TIMEOUT - 5, f"took {result.seconds:.1f} s"
    assert idp.token_grants("refresh_token") == []


def test_hung_keyring_fails_within_the_keyring_timeout(
    idp: IdpServer, exls: ExlsCli, browser: Browser, secret_service: SecretService
) -> None:
    _logged_in(idp, exls, browser)
    secret_service.freeze()  # the daemon is on the bus but never answers (thawed at teardown)

    result = exls.run("auth", "token", env={"EXLS_KEYRING_TIMEOUT": "2"}, timeout=30)
    _assert_keyring_failure(result, "Failed to load token")
    assert "did not answer within 2 s" in result.stderr
    # Abandoned, not waited for until D-Bus gives up (25 s): the bound is generous for a busy
    # machine; that the 2 s setting was the one used is in the message above.
    assert result.seconds < DBUS_REPLY_TIMEOUT - 5, f"took {result.seconds:.1f} s"

    logout = exls.run("logout", env={"EXLS_KEYRING_TIMEOUT": "2"}, timeout=30)
    assert logout.returncode == 1 and logout.seconds < DBUS_REPLY_TIMEOUT - 5, logout.describe()
    assert "Failed to load token" in logout.stderr or "Failed to remove token" in logout.stderr
