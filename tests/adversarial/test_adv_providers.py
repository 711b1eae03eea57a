"""What standards allow providers to do (issue 14), where node-oidc-provider cannot be made to.

Through the real CLI against the lying provider: a device grant answered without an ID token
(the user is identified at userinfo, and userinfo failing in every way refuses the login
with the previous session kept), the first ID token a refresh brings after such a login
(another ``sub`` is refused), ``invalid_scope`` naming one scope, and RFC 8414 metadata that
lies or hangs at logout (one warning, the local entries still go).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from adv_kit import (
    PREVIOUS_EMAIL,
    Outcome,
    Outcomes,
    Result,
    Sandbox,
    Scenarios,
    assert_clean_rejection,
    leaks,
    login_scenario,
)
from lying_idp import EMAIL, SUBJECT, Fault, LyingIdP, Tenant

pytestmark = pytest.mark.attack("providers")

NO_ID_TOKEN = {"id_token": lambda tenant, context: None}
UNIDENTIFIED = (
    "Could not identify you: the token response has no ID token, and the identity "
    "provider's userinfo endpoint "
)

# name -> (tenant configuration, environment, flow, the error line)
LOGINS: dict[str, tuple[dict[str, Any], dict[str, str], str, str]] = {
    "userinfo-401": (
        {**NO_ID_TOKEN, "userinfo_fault": Fault.json({"error": "invalid_token"}, 401)},
        {},
        "device_code",
        UNIDENTIFIED + "answered HTTP 401.",
    ),
    "userinfo-without-sub": (
        {**NO_ID_TOKEN, "userinfo_claims": {"email": EMAIL}},
        {},
        "device_code",
        UNIDENTIFIED + "answered without a sub claim.",
    ),
    "userinfo-empty-sub": (
        {**NO_ID_TOKEN, "userinfo_claims": {"sub": "", "email": EMAIL}},
        {},
        "device_code",
        UNIDENTIFIED + "answered without a sub claim.",
    ),
    "userinfo-signed-jwt": (
        {**NO_ID_TOKEN, "userinfo_fault": Fault.text("eyJ.eyJ.sig", 200, "application/jwt")},
        {},
        "device_code",
        UNIDENTIFIED + "answered with a signed or encrypted response, not JSON.",
    ),
    "userinfo-html": (
        {**NO_ID_TOKEN, "userinfo_fault": Fault.html(200)},
        {},
        "device_code",
        UNIDENTIFIED + "failed (The userinfo endpoint did not answer with JSON",
    ),
    "userinfo-not-an-object": (
        {**NO_ID_TOKEN, "userinfo_fault": Fault.json([SUBJECT])},
        {},
        "device_code",
        UNIDENTIFIED + "answered JSON that is not an object.",
    ),
    "userinfo-hangs": (
        {**NO_ID_TOKEN, "userinfo_fault": Fault.hang()},
        {"EXLS_AUTH_HTTP_TIMEOUT": "1"},
        "device_code",
        UNIDENTIFIED + "failed ({issuer}/userinfo did not answer in time).",
    ),
    "no-userinfo-endpoint": (
        {**NO_ID_TOKEN, "discovery_extra": {"userinfo_endpoint": None}},
        {},
        "device_code",
        UNIDENTIFIED + "is not advertised (no userinfo_endpoint in discovery).",
    ),
    "userinfo-over-http": (
        {**NO_ID_TOKEN, "discovery_extra": {"userinfo_endpoint": "http://idp.example/userinfo"}},
        {},
        "device_code",
        "The identity provider's userinfo_endpoint is not https: http://idp.example/userinfo",
    ),
    "code-flow-without-id-token": (
        NO_ID_TOKEN,
        {},
        "pkce",
        "ID token rejected: the token response has none, although the openid scope was requested",
    ),
    "invalid-scope-named-in-the-description": (
        {
            "device_fault": Fault.json(
                {"error": "invalid_scope", "error_description": "The scope read:all is not valid."},
                400,
            )
        },
        {"EXLS_AUTH_SCOPES": "openid email read:all"},
        "device_code",
        'The identity provider does not accept the scope "read:all" (invalid_scope: The scope '
        'read:all is not valid); remove it from EXLS_AUTH_SCOPES, e.g. EXLS_AUTH_SCOPES="openid '
        'email".',
    ),
    "invalid-scope-not-in-scopes-supported": (
        {
            "device_fault": Fault.json({"error": "invalid_scope"}, 400),
            "discovery_extra": {"scopes_supported": ["openid", "profile", "email"]},
        },
        {},
        "device_code",
        'The identity provider does not accept the scope "offline_access" (invalid_scope); '
        'remove it from EXLS_AUTH_SCOPES, e.g. EXLS_AUTH_SCOPES="openid profile email".',
    ),
}


def login_scenarios(idp: LyingIdP, root: Path) -> Scenarios:
    cases = {name: (config, env, flow) for name, (config, env, flow, _) in LOGINS.items()}
    cases["userinfo-honest"] = (NO_ID_TOKEN, {}, "device_code")
    return {
        name: partial(login_scenario, idp, root, name, flow=flow, env=env, **config)
        for name, (config, env, flow) in cases.items()
    }


@pytest.mark.parametrize("name", LOGINS)
def test_a_login_that_cannot_identify_the_user_keeps_the_previous_session(
    name: str, outcomes: Outcomes[Outcome]
) -> None:
    outcome = outcomes[name]
    assert_clean_rejection(outcome.result, outcome.before, outcome.after)
    assert outcome.result.error.startswith(LOGINS[name][3].format(issuer=outcome.tenant.issuer))
    assert outcome.previous_intact()
    assert leaks(outcome.tenant, outcome.result.out, outcome.result.err) == []
    if name == "code-flow-without-id-token":
        assert outcome.tenant.userinfo_tokens == []  # never asked: the code flow needs one


@pytest.mark.attack("control")
@pytest.mark.parametrize("name", ["userinfo-honest"])
def test_a_device_login_without_id_token_is_identified_at_userinfo(
    name: str, outcomes: Outcomes[Outcome]
) -> None:
    outcome = outcomes[name]
    assert outcome.result.rc == 0, outcome.result
    assert f"Logged in as {EMAIL}" in outcome.result.err
    assert outcome.logged_in_as_alice()
    _, status = outcome.status
    assert status is not None and status["subject"] == SUBJECT
    assert outcome.tenant.userinfo_tokens == outcome.tenant.all_secrets()["access_token"][-1:]


# --- the first ID token after a userinfo login -------------------------------------------------


@dataclass
class Refresh:
    tenant: Tenant
    before: dict[str, str]
    result: Result
    after: dict[str, str]
    status: tuple[int, dict[str, Any] | None]


def refresh_scenario(idp: LyingIdP, root: Path, name: str, sub: str) -> Refresh:
    tenant = idp.tenant(name)
    tenant.refresh_id_token = lambda t, c: t.signer.sign(t.claims_for(None, sub=sub))
    box = Sandbox(root / name, tenant)
    refresh_token = tenant.record("refresh_token", f"RT-seeded-{name}")
    tenant.refresh_valid.add(refresh_token)
    box.seed(  # a device login identified at userinfo: no ID token yet
        access_token=tenant.record("access_token", f"AT-expired-{name}"),
        refresh_token=refresh_token,
        id_token=None,
        subject=SUBJECT,
        email=EMAIL,
        expires_at=time.time() - 30,
    )
    before = box.keyring()
    result = box.exls("auth", "token")
    return Refresh(tenant, before, result, box.keyring(), box.status())


def refresh_scenarios(idp: LyingIdP, root: Path) -> Scenarios:
    return {
        "refresh-id-token-of-another-user": partial(
            refresh_scenario, idp, root, "refresh-id-token-of-another-user", "auth0|mallory"
        ),
        "refresh-id-token-of-the-same-user": partial(
            refresh_scenario, idp, root, "refresh-id-token-of-the-same-user", SUBJECT
        ),
    }


@pytest.mark.parametrize("name", ["refresh-id-token-of-another-user"])
def test_the_first_refreshed_id_token_must_name_the_userinfo_subject(
    name: str, outcomes: Outcomes[Refresh]
) -> None:
    refresh = outcomes[name]
    assert (refresh.result.rc, refresh.result.out) == (1, ""), refresh.result
    assert refresh.result.error == "ID token rejected: subject changed on refresh"
    # The grant now answers for someone else: the session ends, as for a session that had an
    # ID token (test_adv_refresh, OpenID Connect Core 12.2).
    assert refresh.result.err.splitlines()[-1] == (
        "The identity provider now answers for another identity, so the stored session was "
        'removed: run "exls login".'
    ), refresh.result
    assert refresh.after == {}
    rc, status = refresh.status
    assert rc == 1 and status is not None and status["logged_in"] is False


@pytest.mark.attack("control")
@pytest.mark.parametrize("name", ["refresh-id-token-of-the-same-user"])
def test_the_first_refreshed_id_token_of_the_same_user_is_kept(
    name: str, outcomes: Outcomes[Refresh]
) -> None:
    refresh = outcomes[name]
    assert refresh.result.rc == 0, refresh.result
    assert refresh.result.out == f"{refresh.tenant.all_secrets()['access_token'][-1]}\n"
    rc, status = refresh.status
    assert rc == 0 and status is not None and status["expired"] is False
    assert refresh.after != refresh.before  # the ID token is stored now


# --- RFC 8414 metadata at logout ----------------------------------------------------------------

IGNORED = "Warning: ignoring the identity provider's RFC 8414 metadata: "
NO_REVOCATION_IN_DISCOVERY = {"discovery_extra": {"revocation_endpoint": None}}
# name -> (tenant configuration, the warning line, or None when there must be none)
LOGOUTS: dict[str, tuple[dict[str, Any], str | None]] = {
    "rfc8414-revocation-endpoint": (
        {
            **NO_REVOCATION_IN_DISCOVERY,
            "oauth_metadata": {"revocation_endpoint": "{issuer}/revoke"},
        },
        None,
    ),
    "rfc8414-another-issuer": (
        {
            **NO_REVOCATION_IN_DISCOVERY,
            "oauth_metadata": {
                "issuer": "https://evil.example",
                "revocation_endpoint": "{issuer}/revoke",
            },
        },
        IGNORED + "The identity provider says its issuer is 'https://evil.example', but exls is "
        "configured for '{issuer}'; check EXLS_AUTH_ISSUER.",
    ),
    "rfc8414-revocation-over-http": (
        {
            **NO_REVOCATION_IN_DISCOVERY,
            "oauth_metadata": {"revocation_endpoint": "http://evil.example/revoke"},
        },
        IGNORED + "The identity provider's revocation_endpoint is not https: "
        "http://evil.example/revoke.",
    ),
    "rfc8414-hangs": (
        {**NO_REVOCATION_IN_DISCOVERY, "oauth_metadata_fault": Fault.hang()},
        IGNORED + "Cannot reach the identity provider: "
        "{base}/.well-known/oauth-authorization-server/t/rfc8414-hangs did not answer in time.",
    ),
    "rfc8414-http-500": (
        {**NO_REVOCATION_IN_DISCOVERY, "oauth_metadata_fault": Fault.html(500)},
        IGNORED + "{base}/.well-known/oauth-authorization-server/t/rfc8414-http-500 answered "
        "HTTP 500.",
    ),
    "rfc8414-absent": (NO_REVOCATION_IN_DISCOVERY, None),
}


@dataclass
class Logout:
    tenant: Tenant
    result: Result
    left: dict[str, str]


def logout_scenario(idp: LyingIdP, root: Path, name: str, config: dict[str, Any]) -> Logout:
    tenant = idp.tenant(name, **config)
    if tenant.oauth_metadata is not None:
        tenant.oauth_metadata = {
            key: value.format(issuer=tenant.issuer) if isinstance(value, str) else value
            for key, value in tenant.oauth_metadata.items()
        }
    box = Sandbox(root / name, tenant)
    box.seed()
    result = box.exls("logout")
    return Logout(tenant, result, box.keyring())


def logout_scenarios(idp: LyingIdP, root: Path) -> Scenarios:
    return {
        name: partial(logout_scenario, idp, root, name, config)
        for name, (config, _) in LOGOUTS.items()
    }


def scenarios(idp: LyingIdP, root: Path) -> Scenarios:
    return {
        **login_scenarios(idp, root),
        **refresh_scenarios(idp, root),
        **logout_scenarios(idp, root),
    }


@pytest.mark.parametrize("name", LOGOUTS)
def test_logout_reads_rfc8414_metadata_and_warns_once_when_it_fails(
    name: str, outcomes: Outcomes[Logout]
) -> None:
    logout = outcomes[name]
    tenant, result = logout.tenant, logout.result
    assert result.rc == 0 and result.out == "", result
    assert logout.left == {}, "entries left in the keyring"
    warning = LOGOUTS[name][1]
    warnings = [line for line in result.err.splitlines() if line.startswith("Warning")]
    if warning is None:
        assert warnings == [], result
    else:
        assert warnings == [warning.format(issuer=tenant.issuer, base=tenant.base)], result
    revoked = [form["token"] for form in tenant.revoked]
    if name == "rfc8414-revocation-endpoint":
        assert revoked == ["PREV-RT-unchanged", "PREV-AT-unchanged"]
    else:
        assert revoked == []
    assert result.err.splitlines()[-1] == "Logged out."
    assert tenant.hits["oauth-authorization-server"] == 1
    assert PREVIOUS_EMAIL not in result.err
