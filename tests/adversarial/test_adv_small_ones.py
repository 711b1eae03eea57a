"""The smaller findings of the second review (issue 15, item 8), each as a user meets it.

``expires_in: 0`` stored as valid for an hour; a refreshed ID token compared on ``sub`` only
(OpenID Connect Core 12.2 also wants the login's ``iss``, ``aud`` and ``azp``); the chunk
pointer's repr printing its hot record (an access token); the SSO-route cache keeping a
routes URL whose query carries an API key; "using the exalsius login page" printed for
another issuer. (The null keyring's hint is in test_adv_keyring.py, the broken routing
plugin's warning in tests/install.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from adv_kit import (
    PREVIOUS_SUBJECT,
    Outcome,
    Outcomes,
    Result,
    Sandbox,
    Scenarios,
    login_scenario,
)
from lying_idp import CLIENT_ID, LyingIdP, Tenant

from exls_core.session import chunks
from exls_core.session.model import HotRecord

ROUTES_KEY = "RK-routes-api-key-do-not-store"


def routes_key_scenario(idp: LyingIdP, root: Path, name: str) -> Outcome:
    # The tenant answers /routes with 404, which means "no SSO" and is cached as such.
    issuer = f"{idp.base}/t/{name}"
    env = {"EXLS_AUTH_SSO_ROUTES_URL": f"{issuer}/routes?api_key={ROUTES_KEY}"}
    return login_scenario(idp, root, name, env=env)


@dataclass
class Refresh:
    tenant: Tenant
    box: Sandbox
    result: Result
    status: tuple[int, dict[str, Any] | None]


def refresh_scenario(idp: LyingIdP, root: Path, name: str, overrides: dict[str, Any]) -> Refresh:
    """A stored login with a real ID token (aud: the client, no azp), then a refresh whose
    ID token differs from it in ``overrides`` only."""

    def refreshed(tenant: Tenant, context: dict[str, Any]) -> str:
        return tenant.signer.sign(tenant.claims_for(None, sub=PREVIOUS_SUBJECT, **overrides))

    tenant = idp.tenant(name, refresh_id_token=refreshed)
    box = Sandbox(root / name, tenant)
    refresh_token = tenant.record("refresh_token", f"RT-seeded-{name}")
    tenant.refresh_valid.add(refresh_token)
    box.seed(
        refresh_token=refresh_token,
        expires_at=time.time() - 30,
        id_token=tenant.signer.sign(tenant.claims_for(None, sub=PREVIOUS_SUBJECT)),
    )
    result = box.exls("auth", "token")
    return Refresh(tenant, box, result, box.status())


# name -> (claims of the refreshed ID token that differ from the login's, the check named)
REFRESHED: dict[str, tuple[dict[str, Any], str | None]] = {
    "refreshed-id-token-for-another-audience-too": (
        {"aud": [CLIENT_ID, "https://api.other.example"], "azp": CLIENT_ID},
        "audience changed on refresh",
    ),
    "refreshed-id-token-gains-an-azp": ({"azp": CLIENT_ID}, "authorized party (azp) changed"),
    "refreshed-id-token-of-the-same-identity": ({}, None),
}


def scenarios(idp: LyingIdP, root: Path) -> Scenarios:
    cases: dict[str, Any] = {
        "expires-in-zero": partial(login_scenario, idp, root, "expires-in-zero", access_lifetime=0),
        "routes-url-with-a-key": partial(routes_key_scenario, idp, root, "routes-url-with-a-key"),
    }
    for name, (overrides, _) in REFRESHED.items():
        cases[name] = partial(refresh_scenario, idp, root, name, overrides)
    return cases


@pytest.mark.attack("token_endpoint")
@pytest.mark.parametrize("name", ["expires-in-zero"])
def test_expires_in_zero_is_already_expired(name: str, outcomes: Outcomes[Outcome]) -> None:
    outcome = outcomes[name]
    assert outcome.result.rc == 0, outcome.result
    rc, status = outcome.status
    assert rc == 0 and status is not None and status["expired"] is True, status
    token = outcome.box.exls("auth", "token")  # so the token is refreshed, not handed out
    assert token.rc == 0 and outcome.tenant.hits["token:refresh_token"] == 1, token
    assert token.out == f"{outcome.tenant.all_secrets()['access_token'][-1]}\n"


@pytest.mark.attack("refresh")
@pytest.mark.parametrize("name", REFRESHED)
def test_a_refreshed_id_token_must_match_the_logins_iss_aud_azp(
    name: str, outcomes: Outcomes[Refresh]
) -> None:
    refresh = outcomes[name]
    check = REFRESHED[name][1]
    if check is None:  # the control: same identity, accepted
        assert refresh.result.rc == 0, refresh.result
        return
    assert (refresh.result.rc, refresh.result.out) == (1, ""), refresh.result
    assert refresh.result.error.startswith(f"ID token rejected: {check}"), refresh.result
    assert refresh.status[1] is not None and refresh.status[1]["logged_in"] is False


@pytest.mark.attack("secrets")
def test_the_pointers_repr_shows_no_access_token() -> None:
    hot = HotRecord("AT-in-the-pointer", time.time() + 60, "binding").to_dict()
    pointer = chunks.make_pointer("a", "{}", ["{}"], hot)
    assert pointer.hot == hot  # the token is there...
    assert "AT-in-the-pointer" not in repr(pointer)  # ...but never in a traceback or log
    assert "AT-in-the-pointer" not in str(pointer)


@pytest.mark.attack("secrets")
@pytest.mark.parametrize("name", ["routes-url-with-a-key"])
def test_the_routes_cache_keeps_no_api_key(name: str, outcomes: Outcomes[Outcome]) -> None:
    outcome = outcomes[name]
    assert outcome.result.rc == 0, outcome.result
    assert outcome.tenant.hits["routes"] == 1  # asked once, and the answer cached
    cached = list(outcome.box.cache.rglob("sso-route-*.json"))
    assert cached, "no route was cached"
    found = [
        str(path)
        for path in outcome.box.root.rglob("*")
        if path.is_file() and ROUTES_KEY.encode() in path.read_bytes()
    ]
    assert found == [], found
    assert ROUTES_KEY not in outcome.result.err + outcome.result.out


@pytest.mark.attack("mix_up")
@pytest.mark.parametrize("name", ["expires-in-zero"])
def test_another_issuer_is_not_called_the_exalsius_login_page(
    name: str, outcomes: Outcomes[Outcome]
) -> None:
    outcome = outcomes[name]
    first = outcome.result.err.splitlines()[0]
    assert first == "example.com has no SSO configured: using the login page of 127.0.0.1"
    assert "exalsius" not in outcome.result.err
