"""A provider that trickles its answers (issue 23, item 6), through the real CLI.

requests' timeout bounds each socket read, so an answer sent a byte every 50 ms never trips
it: login, refresh (holding the session lock) or logout waited as long as the provider
pleased. Each exchange now has a deadline as a whole (three read timeouts); with
``EXLS_AUTH_HTTP_TIMEOUT=5`` that is 15 s. Each read may take 5 s, a hundred times the
trickle's pace, so that a provider thread starved on a loaded machine still never trips the
read timeout (at 1 s it did, once, and the error named the read timeout instead). The
provider, not the test, measures nothing: the test checks that exls hung up (the provider saw
the client give up, long before the 60 s the trickle would last) and said which endpoint was
too slow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from adv_kit import PREVIOUS_EMAIL, Result, Sandbox, Scenarios
from lying_idp import Fault, LyingIdP, Tenant

pytestmark = pytest.mark.attack("slow_provider")

FAST = {"EXLS_AUTH_HTTP_TIMEOUT": "5"}  # each read 5 s at most; the whole exchange 15 s
TOO_SLOW = "was too slow: no complete answer within 15 s"
TRICKLE = Fault.trickle(seconds=60)  # four deadlines: exls must be the one to hang up


@dataclass
class Slow:
    tenant: Tenant
    result: Result
    after: dict[str, str]
    status: tuple[int, dict[str, Any] | None]


def run(idp: LyingIdP, root: Path, name: str, command: str, **config: Any) -> Slow:
    tenant = idp.tenant(name, **config)
    box = Sandbox(root / name, tenant)
    box.seed(expires_at=time.time() - 30)  # expired: `auth token` refreshes
    if command == "login":
        result = box.login(**FAST)
    else:
        result = box.exls(*command.split(), env=box.env(**FAST))
    return Slow(tenant, result, box.keyring(), box.status())


# name -> (command, tenant configuration, the error or warning line's start, where ... ends)
CASES: dict[str, tuple[str, dict[str, Any], str]] = {
    "discovery-headers-at-login": (
        "login",
        {"discovery_fault": TRICKLE},
        "Error: Cannot reach the identity provider: {issuer}/.well-known/openid-configuration "
        f"{TOO_SLOW}.",
    ),
    "jwks-body-at-login": (
        "login",
        {"jwks_fault": Fault.trickle(body=True, seconds=60)},
        f"Error: Cannot fetch the identity provider's signing keys: {{issuer}}/jwks {TOO_SLOW}.",
    ),
    "token-endpoint-at-refresh": (
        "auth token",
        {"refresh_fault": TRICKLE},
        f"Error: Could not refresh the session: {{issuer}}/token {TOO_SLOW}.",
    ),
    "revocation-at-logout": (
        "logout",
        {"revoke_fault": TRICKLE},
        "Warning: could not revoke the tokens at the identity provider "
        f"({{issuer}}/revoke {TOO_SLOW}); local credentials were removed anyway.",
    ),
}


def scenarios(idp: LyingIdP, root: Path) -> Scenarios:
    return {
        name: partial(run, idp, root, name, command, **config)
        for name, (command, config, _) in CASES.items()
    }


@pytest.mark.parametrize("name", CASES)
def test_a_trickling_provider_is_cut_off_at_the_deadline(name: str, outcomes: Any) -> None:
    slow: Slow = outcomes[name]
    command, _, line = CASES[name]
    assert line.format(issuer=slow.tenant.issuer) in slow.result.err.splitlines(), slow.result
    assert slow.tenant.gave_up_on_every_hang(), slow.tenant.hangs  # exls hung up, not the fake
    rc, status = slow.status
    if command == "logout":
        assert slow.result.rc == 0, slow.result
        assert slow.after == {} and rc == 1, "the session was not removed"
        return
    assert (slow.result.rc, slow.result.out) == (1, ""), slow.result
    assert rc == 0 and status is not None and status["email"] == PREVIOUS_EMAIL, status
