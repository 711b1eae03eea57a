"""exls logout, exls auth status and exls auth token: messages, streams and exit codes."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import NoReturn

import pytest
from keyring.errors import KeyringLocked
from session_testkit import CLIENT_ID, FakeIdP, MemoryKeyring, make_session

from exls_core.cli import run
from exls_core.session import SessionStore


@pytest.fixture
def configured(idp: FakeIdP, monkeypatch: pytest.MonkeyPatch) -> FakeIdP:
    monkeypatch.setenv("EXLS_AUTH_ISSUER", idp.issuer)
    monkeypatch.setenv("EXLS_AUTH_CLIENT_ID", CLIENT_ID)
    return idp


def exls(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["exls", *args])
    with pytest.raises(SystemExit) as caught:
        run()
    out, err = capsys.readouterr()
    return int(caught.value.code or 0), out, err


def log_in(idp: FakeIdP, **overrides: object) -> None:
    values = {"access_token": "SECRET-AT", "refresh_token": "SECRET-RT", "id_token": "SECRET-ID"}
    SessionStore().save(make_session(idp.issuer, **{**values, **overrides}))


Run = tuple[pytest.MonkeyPatch, pytest.CaptureFixture[str]]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    return monkeypatch, capsys


@pytest.fixture(params=["fast path", "click"])
def token_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`exls auth token` runs without click; both ways must answer identically."""
    import exls_core.cli

    if request.param == "click":
        monkeypatch.setattr(exls_core.cli, "is_token_fast_path", lambda argv: False)
        yield "click"
        return
    calls = []
    fast = exls_core.cli._run_token

    def recorded() -> NoReturn:
        calls.append(1)
        fast()

    monkeypatch.setattr(exls_core.cli, "_run_token", recorded)
    yield "fast path"
    assert calls, "the fast path was not taken"


# --- logout


def test_logout_revokes_then_removes_everything(
    memory_keyring: MemoryKeyring, configured: FakeIdP, cli: Run
) -> None:
    log_in(configured)
    assert exls(*cli, "logout") == (0, "", "Logged out.\n")
    assert memory_keyring.entries == {}
    assert configured.revoked == [
        ("SECRET-RT", "refresh_token", CLIENT_ID),
        ("SECRET-AT", "access_token", CLIENT_ID),
    ]


def test_logout_when_revocation_fails_still_removes(
    memory_keyring: MemoryKeyring, configured: FakeIdP, cli: Run
) -> None:
    configured.revoke_status = 503
    log_in(configured)
    code, out, err = exls(*cli, "logout")
    assert (code, out) == (0, "")
    warning, done = err.splitlines()
    assert warning.startswith("Warning: could not revoke the tokens at the identity provider (")
    assert warning.endswith("local credentials were removed anyway.")
    assert "HTTP 503" in warning and "SECRET" not in err
    assert done == "Logged out."
    assert memory_keyring.entries == {}


def test_logout_with_the_provider_down_still_removes(
    memory_keyring: MemoryKeyring, configured: FakeIdP, cli: Run
) -> None:
    log_in(configured)
    configured.stop()
    code, _, err = exls(*cli, "logout")
    assert code == 0 and "Cannot reach the identity provider" in err and "Logged out." in err
    assert memory_keyring.entries == {}


def test_logout_without_a_revocation_endpoint(
    memory_keyring: MemoryKeyring, configured: FakeIdP, cli: Run
) -> None:
    configured.revocation = False
    log_in(configured)
    assert exls(*cli, "logout") == (0, "", "Logged out.\n")
    assert configured.revoked == []


def test_logout_when_not_logged_in(
    memory_keyring: MemoryKeyring, configured: FakeIdP, cli: Run
) -> None:
    assert exls(*cli, "logout") == (0, "", "You are not logged in.\n")
    assert configured.revoked == []


CORRUPTED = (
    "Error: Failed to load token: stored session is corrupted\n"
    'Run "exls logout", then "exls login".\n'
)


def test_logout_removes_a_corrupted_session(
    memory_keyring: MemoryKeyring, configured: FakeIdP, cli: Run, token_path: str
) -> None:
    log_in(configured)
    memory_keyring.entries[("exalsius_cli", "session.a.0")] = "garbage"
    # auth token answers from the pointer's checksummed hot record without reading chunks;
    # every command that needs the full session reports the damage.
    assert exls(*cli, "auth", "token") == (0, "SECRET-AT\n", "")
    assert exls(*cli, "auth", "status") == (1, "", CORRUPTED)
    assert exls(*cli, "logout") == (0, "", "Logged out.\n")
    assert memory_keyring.entries == {}


def test_token_reports_a_damaged_pointer(
    memory_keyring: MemoryKeyring, configured: FakeIdP, cli: Run, token_path: str
) -> None:
    log_in(configured)
    pointer = memory_keyring.entries[("exalsius_cli", "session")]
    assert "SECRET-AT" in pointer  # the hot record is there
    damaged = pointer.replace("SECRET-AT", "SECRET-AX")
    memory_keyring.entries[("exalsius_cli", "session")] = damaged
    assert exls(*cli, "auth", "token") == (1, "", CORRUPTED)


def test_token_reports_damaged_chunks_when_the_pointer_has_no_hot_record(
    memory_keyring: MemoryKeyring, configured: FakeIdP, cli: Run, token_path: str
) -> None:
    log_in(configured, access_token="A" * 1500)  # too long for the pointer entry
    assert "AAAA" not in memory_keyring.entries[("exalsius_cli", "session")]
    memory_keyring.entries[("exalsius_cli", "session.a.0")] = "garbage"
    assert exls(*cli, "auth", "token") == (1, "", CORRUPTED)


# --- status


def test_status_when_logged_in(
    memory_keyring: MemoryKeyring, configured: FakeIdP, cli: Run
) -> None:
    log_in(configured, expires_at=time.time() + 1800)
    code, out, err = exls(*cli, "auth", "status")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "Logged in as alice@example.com"
    assert f"  issuer:   {configured.issuer}" in lines
    assert any(line.startswith("  expires:  20") and "(in 29 minutes)" in line for line in lines)
    assert "  scopes:   openid profile email offline_access" in lines
    assert "  flow:     pkce" in lines
    assert "  keyring:  session_testkit.MemoryKeyring" in lines
    assert "SECRET" not in out


def test_status_json(memory_keyring: MemoryKeyring, configured: FakeIdP, cli: Run) -> None:
    log_in(configured, expires_at=time.time() - 90)
    code, out, err = exls(*cli, "auth", "status", "--json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["logged_in"] is True and data["expired"] is True and data["refreshable"] is True
    assert data["email"] == "alice@example.com" and data["subject"] == "auth0|alice"
    assert data["issuer"] == configured.issuer and data["matches_settings"] is True
    assert data["expires_in"] < 0 and data["expires_at"].endswith("+00:00")
    assert data["flow"] == "pkce" and data["keyring_backend"] == "session_testkit.MemoryKeyring"
    assert "SECRET" not in out


def test_status_when_not_logged_in(
    memory_keyring: MemoryKeyring, configured: FakeIdP, cli: Run
) -> None:
    code, out, err = exls(*cli, "auth", "status")
    assert (code, err) == (1, "")
    assert out.startswith("You are not logged in.\n")
    code, out, _ = exls(*cli, "auth", "status", "--json")
    assert code == 1 and json.loads(out)["logged_in"] is False


def test_status_notes_a_changed_configuration(
    memory_keyring: MemoryKeyring, configured: FakeIdP, cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_in(configured)
    monkeypatch.setenv("EXLS_AUTH_ISSUER", "https://other.example/")
    code, out, _ = exls(*cli, "auth", "status")
    assert code == 0 and "configured for https://other.example/" in out


def test_status_with_a_locked_keyring(
    memory_keyring: MemoryKeyring, configured: FakeIdP, cli: Run
) -> None:
    memory_keyring.read_error = lambda: KeyringLocked("locked")
    code, out, err = exls(*cli, "auth", "status")
    assert (code, out) == (1, "")
    assert err.startswith("Error: Failed to load token: the keyring is locked\nOn Linux, start")


# --- token


def test_token_prints_only_the_token(
    memory_keyring: MemoryKeyring, configured: FakeIdP, cli: Run, token_path: str
) -> None:
    log_in(configured)
    assert exls(*cli, "auth", "token") == (0, "SECRET-AT\n", "")
    assert configured.discovery_hits == 0


def test_token_refreshes_an_expired_token(
    memory_keyring: MemoryKeyring, configured: FakeIdP, cli: Run, token_path: str
) -> None:
    log_in(configured, expires_at=time.time() - 10, refresh_token="rt-0")
    assert exls(*cli, "auth", "token") == (0, "at-1\n", "")


def test_token_json(memory_keyring: MemoryKeyring, configured: FakeIdP, cli: Run) -> None:
    expires_at = time.time() + 3000
    log_in(configured, expires_at=expires_at)
    code, out, err = exls(*cli, "auth", "token", "--json")
    data = json.loads(out)
    assert (code, err) == (0, "")
    assert set(data) == {"access_token", "expires_at", "expires_in", "token_type"}
    assert (data["access_token"], data["token_type"]) == ("SECRET-AT", "Bearer")
    assert datetime.fromisoformat(data["expires_at"]).timestamp() == int(expires_at)
    assert 2900 < data["expires_in"] <= 3000


def test_token_json_refreshes_and_fails_as_the_plain_command(
    memory_keyring: MemoryKeyring, configured: FakeIdP, cli: Run
) -> None:
    assert exls(*cli, "auth", "token", "--json") == (
        1,
        "",
        'Error: You are not logged in. Run "exls login".\n',
    )
    log_in(configured, expires_at=time.time() - 10, refresh_token="rt-0")
    code, out, _ = exls(*cli, "auth", "token", "--json")
    assert (code, json.loads(out)["access_token"]) == (0, "at-1")
    assert json.loads(out)["expires_in"] > 3500


def test_token_when_not_logged_in(
    memory_keyring: MemoryKeyring, configured: FakeIdP, cli: Run, token_path: str
) -> None:
    assert exls(*cli, "auth", "token") == (
        1,
        "",
        'Error: You are not logged in. Run "exls login".\n',
    )


def test_token_when_the_session_expired_beyond_refresh(
    memory_keyring: MemoryKeyring, configured: FakeIdP, cli: Run, token_path: str
) -> None:
    log_in(configured, expires_at=time.time() - 10, refresh_token="rt-dead")
    assert exls(*cli, "auth", "token") == (
        1,
        "",
        'Error: Your session has expired. Run "exls login".\n',
    )
    assert memory_keyring.entries == {}


def test_token_for_another_issuer(
    memory_keyring: MemoryKeyring,
    configured: FakeIdP,
    cli: Run,
    monkeypatch: pytest.MonkeyPatch,
    token_path: str,
) -> None:
    log_in(configured)
    monkeypatch.setenv("EXLS_AUTH_ISSUER", "https://other.example/")
    code, out, err = exls(*cli, "auth", "token")
    assert (code, out) == (1, "")
    assert err.startswith(f"Error: Stored session is for issuer {configured.issuer}")
    assert "SECRET" not in err


def test_token_with_no_keyring_backend(
    configured: FakeIdP, cli: Run, token_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keyring
    from keyring.backends import fail

    monkeypatch.setenv("EXLS_SESSION_STORE", "keyring")  # else the kernel keyring holds it
    previous = keyring.core._keyring_backend
    keyring.set_keyring(fail.Keyring())
    try:
        code, out, err = exls(*cli, "auth", "token")
    finally:
        keyring.core._keyring_backend = previous
    assert (code, out) == (1, "")
    assert err.startswith("Error: Failed to load token: no keyring backend is available\n")


def test_token_cancelled(
    memory_keyring: MemoryKeyring, configured: FakeIdP, cli: Run, token_path: str
) -> None:
    import exls_core.session.refresh

    def interrupted(*args: object, **kwargs: object) -> tuple[str, float]:
        raise KeyboardInterrupt

    cli[0].setattr(exls_core.session.refresh, "get_token_and_expiry", interrupted)
    log_in(configured)
    assert exls(*cli, "auth", "token") == (130, "", "\nCancelled.\n")


def test_only_the_bare_token_command_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from exls_core.cli import is_token_fast_path

    assert is_token_fast_path(["auth", "token"])
    for argv in (["auth", "token", "--help"], ["auth", "status"], ["token"], ["auth"]):
        assert not is_token_fast_path(argv)
    monkeypatch.setenv("_EXLS_COMPLETE", "bash_complete")
    assert not is_token_fast_path(["auth", "token"])
