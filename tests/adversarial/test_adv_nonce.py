"""Nonce (rp-nonce-invalid): in-process through ``complete_login``, and through the CLI's PKCE flow.

The device grant sends no nonce, so the nonce check belongs to the browser flow: there the
lying provider puts a wrong or no nonce in an otherwise valid ID token.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pytest
from adv_kit import (
    EMAIL,
    PREVIOUS_EMAIL,
    Outcome,
    Outcomes,
    Sandbox,
    Scenarios,
    assert_clean_rejection,
    leaks,
    login_scenario,
)
from lying_idp import CLIENT_ID, LyingIdP, Tenant

from exls_core.config import Settings
from exls_core.plugin import FlowRequest, TokenResponse
from exls_core.session import IdTokenRejected, complete_login
from exls_core.ui import TerminalUI

pytestmark = pytest.mark.attack("nonce")

SENT = "n-0S6_WzA2Mj-adversarial"

# --- in-process: complete_login with the nonce the flow reports having sent

IN_PROCESS: dict[str, tuple[Any, str]] = {  # claim value (None: absent) -> check named
    "nonce-missing": (None, "nonce missing"),
    "nonce-wrong": ("n-forged", "nonce mismatch"),
    "nonce-prefix-of-sent": (SENT[:-1], "nonce mismatch"),
    "nonce-sent-is-prefix": (SENT + "x", "nonce mismatch"),
    "nonce-case-changed": (SENT.upper(), "nonce mismatch"),
    "nonce-not-a-string": (12345, "nonce missing"),
    "nonce-empty": ("", "nonce mismatch"),
}


def attempt(tenant: Tenant, box: Sandbox, claim: Any, *, present: bool = True) -> Any:
    claims = tenant.claims_for(None)
    if present:
        claims["nonce"] = claim
    id_token = tenant.signer.sign(claims)
    request = FlowRequest(
        issuer=tenant.issuer,
        metadata=tenant.discovery(),
        client_id=CLIENT_ID,
        scopes=("openid", "email"),
        nonce=SENT,
        ui=TerminalUI(),
        http=None,  # type: ignore[arg-type]  (complete_login uses its own)
    )
    response = TokenResponse(access_token="AT-in-process", id_token=id_token)  # says nothing
    return complete_login(
        Settings(issuer=tenant.issuer, client_id=CLIENT_ID),
        request.metadata,
        request,
        response,
        flow_id="pkce",
        store=box.store(),
    )


@pytest.mark.parametrize("name", IN_PROCESS)
def test_complete_login_refuses_the_nonce(name: str, idp: LyingIdP, tmp_path: Path) -> None:
    tenant = idp.tenant(f"inproc-{name}")
    box = Sandbox(tmp_path, tenant)
    box.seed()
    before = box.keyring()
    claim, check = IN_PROCESS[name]
    with pytest.raises(IdTokenRejected) as rejected:
        attempt(tenant, box, claim, present=claim is not None)
    assert rejected.value.message == f"ID token rejected: {check}"
    assert box.keyring() == before
    stored = box.store().load()
    assert stored is not None and stored.email == PREVIOUS_EMAIL


@pytest.mark.attack("control")
def test_complete_login_accepts_the_nonce_it_sent(idp: LyingIdP, tmp_path: Path) -> None:
    tenant = idp.tenant("inproc-control")
    box = Sandbox(tmp_path, tenant)
    box.seed()
    session = attempt(tenant, box, SENT)
    assert session.email == EMAIL
    stored = box.store().load()
    assert stored is not None and stored.email == EMAIL


# --- through the CLI: the PKCE flow, with a browser that follows the provider's redirect


def with_nonce(value: Any) -> Any:
    def make(tenant: Tenant, context: dict[str, Any]) -> str:
        claims = tenant.claims_for(None)
        if value is not None:
            claims["nonce"] = context["nonce"] if value == "sent" else value
        return tenant.signer.sign(claims)

    return make


THROUGH_CLI: dict[str, tuple[Any, str]] = {
    "rp-nonce-invalid": (with_nonce("n-forged"), "nonce mismatch"),
    "rp-nonce-missing": (with_nonce(None), "nonce missing"),
}


def scenarios(idp: LyingIdP, root: Path) -> Scenarios:
    makers = {name: maker for name, (maker, _) in THROUGH_CLI.items()}
    makers["rp-nonce-valid"] = with_nonce("sent")
    return {
        name: partial(login_scenario, idp, root, name, flow="pkce", id_token=maker)
        for name, maker in makers.items()
    }


@pytest.mark.parametrize("name", THROUGH_CLI)
def test_the_pkce_login_refuses_the_nonce(name: str, outcomes: Outcomes[Outcome]) -> None:
    outcome = outcomes[name]
    assert_clean_rejection(outcome.result, outcome.before, outcome.after)
    assert outcome.result.error == f"ID token rejected: {THROUGH_CLI[name][1]}", outcome.result
    assert outcome.previous_intact(), outcome.status
    assert outcome.tenant.hits["token:authorization_code"] == 1
    assert leaks(outcome.tenant, outcome.result.out, outcome.result.err) == []


@pytest.mark.attack("control")
@pytest.mark.parametrize("name", ["rp-nonce-valid"])
def test_the_pkce_login_accepts_its_own_nonce(name: str, outcomes: Outcomes[Outcome]) -> None:
    outcome = outcomes[name]
    assert outcome.result.rc == 0, outcome.result
    assert outcome.logged_in_as_alice(), outcome.status
    assert outcome.tenant.callback_replies[0][0] == 200
    assert "You are signed in" in outcome.tenant.callback_replies[0][1]


@pytest.mark.parametrize("name", THROUGH_CLI)
def test_the_browser_is_not_told_it_signed_in_when_the_id_token_is_rejected(
    name: str, outcomes: Outcomes[Outcome]
) -> None:
    outcome = outcomes[name]
    assert outcome.result.rc == 1
    assert outcome.tenant.callback_replies, "the browser got no page"
    assert "You are signed in" not in outcome.tenant.callback_replies[0][1]
