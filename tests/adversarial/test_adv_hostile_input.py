"""Hostile provider input that crashed exls (issue 23, item 5), each as a user meets it.

A malformed endpoint URL in discovery (``https://[x``: urllib raises ValueError) at login,
refresh and logout; a huge integer ``expires_in`` (OverflowError) in a refresh answer that
rotated the refresh token; JSON nested deeper than Python recurses (RecursionError); a
pasted ``http://[...``. Each must end in one clear line and exit 1 (logout: exit 0 with a
warning, the session removed whatever the provider does), and lose nothing: a previous
session survives, a rotated refresh token is kept.
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from adv_kit import (
    EMAIL,
    PREVIOUS_EMAIL,
    Outcome,
    Outcomes,
    Result,
    Sandbox,
    Scenarios,
    assert_clean_rejection,
    login_scenario,
    spawn,
)
from lying_idp import Fault, LyingIdP, Tenant

MALFORMED = "https://[x"
NESTED = "[" * 200_000 + "]" * 200_000  # far deeper than Python's recursion limit
KEPT = "Your session was kept; try again."


@dataclass
class Run:
    tenant: Tenant
    box: Sandbox
    before: dict[str, str]
    result: Result
    after: dict[str, str]
    status: tuple[int, dict[str, Any] | None]
    refresh_token: str = ""  # the rotated one the provider sent, if any
    kept: str | None = None  # the refresh token stored after the first run
    again: Result | None = None


def refresh_scenario(idp: LyingIdP, root: Path, name: str, config: dict[str, Any]) -> Run:
    """A stored, expired session, then ``exls auth token`` (a refresh) against ``config``."""
    config = dict(config)
    rotated = config.pop("rotated_answer", None)
    tenant = idp.tenant(name, **config)
    box = Sandbox(root / name, tenant)
    seeded = tenant.record("refresh_token", f"RT-seeded-{name}")
    tenant.refresh_valid.add(seeded)
    box.seed(refresh_token=seeded, expires_at=time.time() - 30)
    new_refresh = ""
    if rotated is not None:  # the provider spends the old token and sends this answer
        new_refresh = tenant.record("refresh_token", f"RT-rotated-{name}")

        def spend(tenant: Tenant) -> None:
            with tenant.lock:
                tenant.refresh_valid.discard(seeded)
                tenant.refresh_used.add(seeded)
                tenant.refresh_valid.add(new_refresh)

        tenant.on_refresh = spend
        tenant.refresh_fault = Fault.json({**rotated, "refresh_token": new_refresh})
    before = box.keyring()
    result = box.exls("auth", "token")
    run = Run(tenant, box, before, result, box.keyring(), box.status(), new_refresh)
    if rotated is not None:  # the provider mends its ways: the kept token must still work
        stored = box.store().load()
        run.kept = stored.refresh_token if stored is not None else None
        tenant.refresh_fault, tenant.on_refresh = None, None
        run.again = box.exls("auth", "token")
    return run


def logout_scenario(idp: LyingIdP, root: Path, name: str, config: dict[str, Any]) -> Run:
    tenant = idp.tenant(name, **config)
    box = Sandbox(root / name, tenant)
    box.seed()
    before = box.keyring()
    result = box.exls("logout")
    return Run(tenant, box, before, result, box.keyring(), box.status())


def paste_scenario(idp: LyingIdP, root: Path, name: str) -> Result:
    """``exls login --no-browser``: the user pastes ``http://[...`` first, then signs in."""
    tenant = idp.tenant(name)
    box = Sandbox(root / name, tenant)
    args = ["login", "--auth-flow", "pkce", "--email", EMAIL, "--no-browser"]
    started = time.monotonic()
    process = spawn(box, *args, env=box.env(), stdin=subprocess.PIPE)
    assert process.stdin is not None and process.stderr is not None
    seen = []
    try:
        for line in process.stderr:  # ends at exls's exit: the PKCE timeout is the hang guard
            seen.append(line)
            if line.startswith(f"{tenant.issuer}/authorize?"):
                link = line.strip()
            elif line.startswith("Paste the address here"):
                process.stdin.write("http://[x/callback?code=1\n")
                process.stdin.flush()
            elif line.startswith("Refused: "):
                with urllib.request.urlopen(link, timeout=60) as page:  # the browser elsewhere
                    page.read()
                break
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    result = Result(tuple(args), process.returncode, out, "".join(seen) + err, 0.0)
    result.elapsed = time.monotonic() - started
    return result


REFRESH: dict[str, dict[str, Any]] = {
    "refresh-malformed-token-endpoint": {"discovery_extra": {"token_endpoint": MALFORMED}},
    "refresh-nested-json": {"refresh_fault": Fault.text(NESTED, content_type="application/json")},
    "refresh-huge-expires-in-after-rotation": {
        "rotated_answer": {"access_token": "AT-huge", "token_type": "Bearer", "expires_in": 10**400}
    },
}
LOGIN: dict[str, dict[str, Any]] = {
    "login-malformed-authorization-endpoint": {
        "flow": "pkce",
        "discovery_extra": {"authorization_endpoint": MALFORMED},
    },
    "login-malformed-port": {"discovery_extra": {"device_authorization_endpoint": "https://a:x/"}},
    "login-nested-discovery": {
        "discovery_fault": Fault.text(NESTED, content_type="application/json")
    },
}


def scenarios(idp: LyingIdP, root: Path) -> Scenarios:
    cases: dict[str, Any] = {
        name: partial(refresh_scenario, idp, root, name, config) for name, config in REFRESH.items()
    }
    cases |= {
        name: partial(login_scenario, idp, root, name, **config) for name, config in LOGIN.items()
    }
    cases["logout-malformed-revocation-endpoint"] = partial(
        logout_scenario,
        idp,
        root,
        "logout-malformed-revocation-endpoint",
        {"discovery_extra": {"revocation_endpoint": MALFORMED}},
    )
    cases["paste-malformed-address"] = partial(paste_scenario, idp, root, "paste-malformed-address")
    return cases


def assert_one_line(result: Result) -> None:
    assert "Traceback" not in result.err, result
    assert "bug in the plugin" not in result.err, result


@pytest.mark.attack("discovery")
@pytest.mark.parametrize("name", LOGIN)
def test_a_malformed_discovery_answer_stops_the_login_in_one_line(
    name: str, outcomes: Outcomes[Outcome]
) -> None:
    outcome = outcomes[name]
    assert_clean_rejection(outcome.result, outcome.before, outcome.after)
    assert_one_line(outcome.result)
    if name == "login-nested-discovery":
        expected = "The OpenID discovery endpoint did not answer with JSON (HTTP 200, "
    else:
        expected = "The identity provider's discovery document has an invalid "
    assert outcome.result.error.startswith(expected), outcome.result
    assert outcome.previous_intact(), outcome.status


@pytest.mark.attack("refresh")
@pytest.mark.parametrize("name", REFRESH)
def test_hostile_refresh_answers_end_in_one_line_and_lose_nothing(
    name: str, outcomes: Outcomes[Run]
) -> None:
    run = outcomes[name]
    assert (run.result.rc, run.result.out) == (1, ""), run.result
    assert_one_line(run.result)
    expected = {
        "refresh-malformed-token-endpoint": "The identity provider's discovery document has an "
        "invalid token_endpoint.",
        "refresh-nested-json": "The token endpoint did not answer with JSON (HTTP 200, ",
        "refresh-huge-expires-in-after-rotation": "The identity provider sent an invalid "
        "expires_in.",
    }[name]
    assert run.result.error.startswith(expected), run.result
    rc, status = run.status
    assert rc == 0 and status is not None and status["email"] == PREVIOUS_EMAIL, status
    if not run.refresh_token:
        assert run.after == run.before, "the stored session changed"
        return
    assert run.result.err.splitlines()[-1] == KEPT, run.result
    assert run.kept == run.refresh_token  # not lost
    assert run.again is not None and run.again.rc == 0, run.again  # and it still works
    assert run.again.out == f"{run.tenant.all_secrets()['access_token'][-1]}\n"


@pytest.mark.attack("revocation")
@pytest.mark.parametrize("name", ["logout-malformed-revocation-endpoint"])
def test_logout_removes_the_session_whatever_discovery_says(
    name: str, outcomes: Outcomes[Run]
) -> None:
    run = outcomes[name]
    assert run.result.rc == 0, run.result
    assert_one_line(run.result)
    assert run.result.err.splitlines() == [
        "Warning: could not revoke the tokens at the identity provider (The identity "
        "provider's discovery document has an invalid revocation_endpoint); local "
        "credentials were removed anyway.",
        "Logged out.",
    ], run.result
    assert run.after == {}, "keyring entries left behind"
    assert run.status[1] is not None and run.status[1]["logged_in"] is False


@pytest.mark.attack("listener")
@pytest.mark.parametrize("name", ["paste-malformed-address"])
def test_a_malformed_pasted_address_is_refused_and_the_login_goes_on(
    name: str, outcomes: Outcomes[Result]
) -> None:
    result = outcomes[name]
    assert_one_line(result)
    assert "Refused: That is not this login's address; it starts with http://127.0.0.1:" in (
        result.err
    ), result
    assert result.rc == 0, result
    assert f"Logged in as {EMAIL}" in result.err, result
