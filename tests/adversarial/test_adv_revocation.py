"""``exls logout`` while the revocation endpoint fails (RFC 7009), through the real CLI.

Whatever the provider does, the local credentials go: exit 0, one warning line naming the
problem, then ``Logged out.``; every keyring entry removed; ``exls auth status`` says
logged out; bounded time; and no token ever sent to anyone but the provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from adv_kit import Outcomes, Result, Sandbox, Scenarios
from lying_idp import HTTP_500, Fault, LyingIdP, Tenant

pytestmark = pytest.mark.attack("revocation")

WARNING = "Warning: could not revoke the tokens at the identity provider ("
REMOVED = "); local credentials were removed anyway."
REVOKE = "{issuer}/revoke"

# name -> (tenant configuration, environment, the reason the warning must give, how long logout
# waits for a hung revocation, as the provider measures it (None: nothing hangs)).
# The default HTTP timeout is 10 s and logout caps its wait at 5 s: the range tells them apart.
CASES: dict[str, tuple[dict[str, Any], dict[str, str], str, tuple[float, float] | None]] = {
    "http-500": (
        {"revoke_fault": HTTP_500},
        {},
        f"{REVOKE} answered HTTP 500 (server_error)",
        None,
    ),
    "html-error-page": ({"revoke_fault": Fault.html(502)}, {}, f"{REVOKE} answered HTTP 502", None),
    "not-json-400": (
        {"revoke_fault": Fault.text("no", 400)},
        {},
        f"{REVOKE} answered HTTP 400",
        None,
    ),
    "several-megabytes-400": (
        {"revoke_fault": Fault.huge(400)},
        {},
        f"{REVOKE} answered HTTP 400",
        None,
    ),
    "hangs": (
        {"revoke_fault": Fault.hang()},
        {"EXLS_AUTH_HTTP_TIMEOUT": "1"},
        f"{REVOKE} did not answer in time",
        (0.5, 4.0),  # the 1 s setting, not the 5 s cap
    ),
    "hangs-with-the-default-timeout": (  # logout caps its wait at 5 s whatever the setting
        {"revoke_fault": Fault.hang()},
        {},
        f"{REVOKE} did not answer in time",
        (3.0, 8.5),  # the 5 s cap, not the 10 s default
    ),
    "connection-reset": (
        {"revoke_fault": Fault.reset(early=True)},
        {},
        f"cannot connect to {REVOKE}",
        None,
    ),
    "discovery-down": (
        {"discovery_fault": HTTP_500},
        {},
        "OpenID discovery failed: {issuer}/.well-known/openid-configuration answered HTTP 500; "
        "check EXLS_AUTH_ISSUER",
        None,
    ),
    "307-to-another-host": ({"revoke_fault": "redirect"}, {}, "", None),
}


@dataclass
class Logout:
    tenant: Tenant
    box: Sandbox
    result: Result
    left: dict[str, str]
    status: tuple[int, dict[str, Any] | None]
    tokens: tuple[str, str]


def scenario(
    idp: LyingIdP, root: Path, name: str, config: dict[str, Any], env: dict[str, str]
) -> Logout:
    config = dict(config)
    if config.get("revoke_fault") == "redirect":
        collector = idp.tenant(f"{name}-collector")
        config["revoke_fault"] = Fault.redirect(f"{collector.issuer}/revoke", 307)
    tenant = idp.tenant(name, **config)
    box = Sandbox(root / name, tenant)
    session = box.seed(access_token=f"AT-logout-{name}", refresh_token=f"RT-logout-{name}")
    assert box.keyring()
    result = box.exls("logout", env=box.env(**env))
    tokens = (session.access_token, session.refresh_token or "")
    return Logout(tenant, box, result, box.keyring(), box.status(), tokens)


def scenarios(idp: LyingIdP, root: Path) -> Scenarios:
    cases = {name: (config, env) for name, (config, env, _, _) in CASES.items()}
    cases["honest-provider"] = ({}, {})
    return {name: partial(scenario, idp, root, name, *case) for name, case in cases.items()}


def assert_logged_out(logout: Logout) -> None:
    assert logout.result.rc == 0, logout.result
    assert logout.result.out == "", logout.result
    assert logout.left == {}, "keyring entries left behind"
    assert logout.status[0] == 1 and logout.status[1] == {
        "logged_in": False,
        "session_store": "keyring",
        "keyring_backend": "exls_test_filekeyring.FileKeyring",
        "other_sessions": [],  # nor in the kernel keyring
    }
    assert not any(token in logout.result.err for token in logout.tokens)


@pytest.mark.parametrize("name", [name for name in CASES if name != "307-to-another-host"])
def test_logout_removes_everything_and_warns_once(name: str, outcomes: Outcomes[Logout]) -> None:
    logout = outcomes[name]
    assert_logged_out(logout)
    reason, patience = CASES[name][2], CASES[name][3]
    warning = f"{WARNING}{reason.format(issuer=logout.tenant.issuer)}{REMOVED}"
    assert logout.result.err.splitlines() == [warning, "Logged out."], logout.result
    hangs = logout.tenant.ended_hangs()
    assert [hang.end for hang in hangs] == (["client gave up"] if patience else []), hangs
    if patience:
        low, high = patience
        assert low <= hangs[0].waited < high, hangs  # measured by the provider, not the machine


@pytest.mark.parametrize("name", ["307-to-another-host"])
def test_a_redirect_does_not_carry_the_refresh_token_elsewhere(
    name: str, outcomes: Outcomes[Logout], idp: LyingIdP
) -> None:
    logout = outcomes[name]
    assert_logged_out(logout)
    assert idp.tenants[f"{name}-collector"].revoked == []


@pytest.mark.attack("control")
@pytest.mark.parametrize("name", ["honest-provider"])
def test_an_honest_provider_revokes_both_tokens(name: str, outcomes: Outcomes[Logout]) -> None:
    logout = outcomes[name]
    assert_logged_out(logout)
    assert logout.result.err == "Logged out.\n"
    assert [(r["token"], r["token_type_hint"]) for r in logout.tenant.revoked] == [
        (logout.tokens[1], "refresh_token"),
        (logout.tokens[0], "access_token"),
    ]
