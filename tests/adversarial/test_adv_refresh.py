"""A token endpoint that lies when ``exls auth token`` refreshes an expired access token.

Through the real CLI over an expired session. The rules (exls_core/session/refresh.py):
``invalid_grant`` ends the session, but only if nobody stored a newer one meanwhile; any
other failure keeps the session byte for byte and says so; stdout stays empty unless a
valid token is printed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from adv_kit import (
    FAULTY_KEYRING,
    PREVIOUS_EMAIL,
    PREVIOUS_SUBJECT,
    Outcomes,
    Result,
    Sandbox,
    Scenarios,
    leaks,
)
from lying_idp import HTTP_500, Fault, LyingIdP, Tenant, rsa_key, unsigned

from exls_core.session import Session
from exls_core.session.keyring_calls import fix_hint

pytestmark = pytest.mark.attack("refresh")

KEPT = "Your session was kept; try again."
NEWER_EMAIL = "newer@example.com"


def refresh_token_claims(tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    return tenant.claims_for(None, **{"sub": PREVIOUS_SUBJECT, **overrides})


def id_token(**overrides: Any) -> Any:
    return lambda t, c: t.signer.sign(refresh_token_claims(t, **overrides))


# name -> (tenant configuration, environment, expected error line, expected hint or None)
CASES: dict[str, tuple[dict[str, Any], dict[str, str], str, str | None]] = {
    "http-500": (
        {"refresh_fault": HTTP_500},
        {},
        "Could not refresh the session: the identity provider answered HTTP 500 (server_error).",
        KEPT,
    ),
    "html-error-page": (
        {"refresh_fault": Fault.html(502)},
        {},
        "Could not refresh the session: the identity provider answered HTTP 502.",
        KEPT,
    ),
    "other-oauth-error": (
        {"refresh_fault": Fault.json({"error": "invalid_request"}, 400)},
        {},
        "Could not refresh the session: the identity provider answered HTTP 400 (invalid_request).",
        KEPT,
    ),
    "not-json": (
        {"refresh_fault": Fault.text("access_token=AT-form")},
        {},
        "The token endpoint did not answer with JSON (HTTP 200, text/plain).",
        None,
    ),
    "json-not-an-object": (
        {"refresh_fault": Fault.json(["access_token"])},
        {},
        "Could not refresh the session: the token response is not an object.",
        None,
    ),
    "several-megabytes": (
        {"refresh_fault": Fault.huge()},
        {},
        "The token endpoint answer is too large (over 1048576 bytes).",
        None,
    ),
    "hangs": (
        {"refresh_fault": Fault.hang()},
        {"EXLS_AUTH_HTTP_TIMEOUT": "1"},
        "Could not refresh the session: {issuer}/token did not answer in time.",
        KEPT,
    ),
    "connection-reset": (
        {"refresh_fault": Fault.reset()},
        {},
        "Could not refresh the session: request to {issuer}/token failed (",
        KEPT,
    ),
    "no-access-token": (
        # (with a rotated refresh token, that one is kept: test_adv_hostile_input.py)
        {"refresh_fault": Fault.json({"token_type": "Bearer"})},
        {},
        "The identity provider's token response has no access_token.",
        None,
    ),
    "token-type-not-bearer": (
        {"refresh_fault": Fault.json({"access_token": "AT-mac", "token_type": "mac"})},
        {},
        "Unsupported token_type 'mac'; expected Bearer.",
        None,
    ),
}
EXPIRED = 'Your session has expired. Run "exls login".'
STALLED = "the keyring did not answer within 10 s; exls makes no more keyring calls in this run"
HANGING_KEYRING = {  # a write hangs past exls's timeout (for 30 s, then it would land)
    "PYTHON_KEYRING_BACKEND": FAULTY_KEYRING,
    "EXLS_KEYRING_TIMEOUT": "10",  # the default: starting a keyring takes seconds when loaded
    "EXLS_TEST_KEYRING_HANG": "120",
}
CLOCK = "Check that this computer's clock is correct, then run exls login again."

# The provider rotated the refresh token, then its refreshed ID token is rejected, or cannot
# be checked: the session is kept with the new refresh token (the old one is spent), so that
# the next refresh, once the provider is fixed, works. name -> (tenant config, error, hint)
UNVERIFIED: dict[str, tuple[dict[str, Any], str, str]] = {
    "id-token-bad-signature": (
        {
            "refresh_id_token": lambda t, c: rsa_key("adv-attacker").sign(
                refresh_token_claims(t), kid=t.signer.kid
            )
        },
        "ID token rejected: signature verification failed",
        KEPT,
    ),
    "id-token-of-another-issuer": (
        {"refresh_id_token": id_token(iss="https://evil.example")},
        "ID token rejected: issuer mismatch",
        KEPT,
    ),
    "id-token-unsigned": (
        {"refresh_id_token": lambda t, c: unsigned(refresh_token_claims(t))},
        "ID token rejected: unsupported algorithm 'none'",
        KEPT,
    ),
    "id-token-expired": (
        {"refresh_id_token": id_token(exp=int(time.time()) - 3600)},
        "ID token rejected: expired",
        CLOCK,
    ),
    "keyring-hangs-storing-the-refreshed-tokens": (
        {
            "env": {
                **HANGING_KEYRING,
                "EXLS_TEST_KEYRING_FAULT": 'hang-if="(at|access_token)":"AT-(?!expired)',
            }
        },
        f"Failed to store token: {STALLED}",
        fix_hint(),
    ),
    "jwks-unreachable-while-the-id-token-is-checked": (
        {"refresh_id_token": id_token(), "jwks_fault": HTTP_500},
        "Cannot fetch the identity provider's signing keys: {issuer}/jwks answered HTTP 500.",
        KEPT,
    ),
}
# A valid refreshed ID token for another identity (OpenID Connect Core 12.2): session ends.
IDENTITY_CHANGED: dict[str, tuple[dict[str, Any], str]] = {
    "id-token-of-another-subject": (
        {"refresh_id_token": id_token(sub="auth0|mallory")},
        "ID token rejected: subject changed on refresh",
    ),
}
REMOVED_HINT = (
    "The identity provider now answers for another identity, so the stored session was "
    'removed: run "exls login".'
)


@dataclass
class Refresh:
    tenant: Tenant
    box: Sandbox
    before: dict[str, str]
    result: Result
    after: dict[str, str]
    status: tuple[int, dict[str, Any] | None]
    refresh_token: str
    kept: Session | None = None  # what the keyring held after the first `exls auth token`
    again: Result | None = None  # a second one, once the provider is honest


def scenario(
    idp: LyingIdP, root: Path, name: str, config: dict[str, Any], env: dict[str, str]
) -> Refresh:
    config = dict(config)
    if config.get("refresh_fault") == "redirect":
        collector = idp.tenant(f"{name}-collector")
        config["refresh_fault"] = Fault.redirect(f"{collector.issuer}/token", 307)
    newer = config.pop("newer_login", False)
    tenant = idp.tenant(name, **config)
    box = Sandbox(root / name, tenant)
    refresh_token = tenant.record("refresh_token", f"RT-seeded-{name}")
    tenant.refresh_valid.add(refresh_token)
    box.seed(
        access_token=tenant.record("access_token", f"AT-expired-{name}"),
        refresh_token=refresh_token,
        expires_at=time.time() - 30,
    )
    if newer:  # someone logs in anew while this refresh is on its way

        def newer_login(_: Tenant) -> None:
            box.seed(email=NEWER_EMAIL, refresh_token="RT-newer", access_token="AT-newer")

        tenant.on_refresh = newer_login
    before = box.keyring()
    result = box.exls("auth", "token", env=box.env(**env))
    refresh = Refresh(tenant, box, before, result, box.keyring(), box.status(), refresh_token)
    if name in UNVERIFIED:
        refresh.kept = box.store().load()
        tenant.refresh_id_token, tenant.jwks_fault = None, None
        refresh.again = box.exls("auth", "token")  # with a healthy keyring too
    return refresh


EXTRA: dict[str, dict[str, Any]] = {
    "invalid-grant": {"refresh_fault": Fault.json({"error": "invalid_grant"}, 400)},
    "invalid-grant-after-a-newer-login": {
        "refresh_fault": Fault.json({"error": "invalid_grant"}, 400),
        "newer_login": True,
    },
    "307-to-another-host": {"refresh_fault": "redirect"},
    "honest-provider": {},
}


def scenarios(idp: LyingIdP, root: Path) -> Scenarios:
    cases = {name: (config, env) for name, (config, env, _, _) in CASES.items()}
    cases |= {name: (config, {}) for name, config in EXTRA.items()}
    for name, (config, _, _) in UNVERIFIED.items():
        config = dict(config)
        cases[name] = (config, config.pop("env", {}))
    cases |= {name: (config, {}) for name, (config, _) in IDENTITY_CHANGED.items()}
    return {name: partial(scenario, idp, root, name, *case) for name, case in cases.items()}


@pytest.mark.parametrize("name", CASES)
def test_a_failed_refresh_keeps_the_session(name: str, outcomes: Outcomes[Refresh]) -> None:
    refresh = outcomes[name]
    result = refresh.result
    assert (result.rc, result.out) == (1, ""), result
    assert result.error.startswith(CASES[name][2].format(issuer=refresh.tenant.issuer)), result
    hint = CASES[name][3]
    if hint is not None:
        assert result.err.splitlines()[-1] == hint, result
    assert refresh.after == refresh.before, "the stored session changed"
    rc, status = refresh.status
    assert rc == 0 and status is not None and status["email"] == PREVIOUS_EMAIL
    assert status["expired"] is True and status["refreshable"] is True
    assert leaks(refresh.tenant, result.out, result.err) == []
    assert refresh.tenant.gave_up_on_every_hang(), refresh.tenant.hangs  # they last 30 s


@pytest.mark.parametrize("name", UNVERIFIED)
def test_a_rejected_refreshed_id_token_keeps_the_new_refresh_token(
    name: str, outcomes: Outcomes[Refresh]
) -> None:
    refresh = outcomes[name]
    result = refresh.result
    _, error, hint = UNVERIFIED[name]
    assert (result.rc, result.out) == (1, ""), result
    assert result.error == error.format(issuer=refresh.tenant.issuer), result
    stored = refresh.kept
    rotated = refresh.tenant.all_secrets()["refresh_token"][1]  # issued by this refresh
    assert stored is not None and stored.refresh_token == rotated, "the new one was lost"
    assert stored.access_token == f"AT-expired-{name}"  # nothing else from that answer
    assert stored.email == PREVIOUS_EMAIL
    # The provider (with reuse detection) is honest again: the next refresh just works.
    assert refresh.again is not None and refresh.again.rc == 0, refresh.again
    assert refresh.again.out == f"{refresh.tenant.all_secrets()['access_token'][-1]}\n"
    assert refresh.tenant.refresh_valid, "a spent refresh token was replayed: grant revoked"
    assert result.err.splitlines()[-1] == hint, result
    assert leaks(refresh.tenant, result.out, result.err) == []


@pytest.mark.parametrize("name", IDENTITY_CHANGED)
def test_a_refreshed_id_token_for_another_identity_ends_the_session(
    name: str, outcomes: Outcomes[Refresh]
) -> None:
    refresh = outcomes[name]
    assert (refresh.result.rc, refresh.result.out) == (1, ""), refresh.result
    assert refresh.result.error == IDENTITY_CHANGED[name][1], refresh.result
    assert refresh.result.err.splitlines()[-1] == REMOVED_HINT, refresh.result
    assert refresh.after == {}
    assert refresh.status[0] == 1 and refresh.status[1] is not None
    assert refresh.status[1]["logged_in"] is False


@pytest.mark.parametrize("name", ["invalid-grant"])
def test_invalid_grant_ends_the_session(name: str, outcomes: Outcomes[Refresh]) -> None:
    refresh = outcomes[name]
    assert (refresh.result.rc, refresh.result.out) == (1, ""), refresh.result
    assert refresh.result.error == EXPIRED
    assert refresh.after == {}
    assert refresh.status[0] == 1 and refresh.status[1] is not None
    assert refresh.status[1]["logged_in"] is False


@pytest.mark.parametrize("name", ["invalid-grant-after-a-newer-login"])
def test_invalid_grant_spares_a_newer_login(name: str, outcomes: Outcomes[Refresh]) -> None:
    refresh = outcomes[name]
    assert (refresh.result.rc, refresh.result.out) == (1, ""), refresh.result
    assert refresh.result.error == EXPIRED
    rc, status = refresh.status
    assert rc == 0 and status is not None and status["email"] == NEWER_EMAIL


@pytest.mark.parametrize("name", ["307-to-another-host"])
def test_a_redirect_does_not_carry_the_refresh_token_elsewhere(
    name: str, outcomes: Outcomes[Refresh], idp: LyingIdP
) -> None:
    refresh = outcomes[name]
    assert refresh.result.rc == 1
    assert idp.tenants[f"{name}-collector"].hits["token"] == 0


@pytest.mark.attack("control")
@pytest.mark.parametrize("name", ["honest-provider"])
def test_an_honest_refresh_prints_the_new_token(name: str, outcomes: Outcomes[Refresh]) -> None:
    refresh = outcomes[name]
    issued = refresh.tenant.all_secrets()["access_token"]
    assert refresh.result.rc == 0, refresh.result
    assert refresh.result.out == f"{issued[-1]}\n" and refresh.result.err == ""
    assert refresh.refresh_token in refresh.tenant.refresh_used  # rotated
    rc, status = refresh.status
    assert rc == 0 and status is not None and status["expired"] is False
