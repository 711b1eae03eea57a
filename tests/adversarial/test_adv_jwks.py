"""A lying JWKS endpoint: the flow succeeds, the keys to check its ID token cannot be had.

Through the real CLI (device code flow), over a previous session: exit 1 with the reason,
nothing stored. And a JWKS endpoint that hangs while the login fails for another reason:
exls must not leave its background warm-up running when it exits.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from adv_kit import (
    EMAIL,
    THREADS_AT_EXIT_WRAPPER,
    Outcome,
    Outcomes,
    Result,
    Sandbox,
    Scenarios,
    assert_clean_rejection,
    login_scenario,
)
from lying_idp import HTTP_500, Fault, LyingIdP

pytestmark = pytest.mark.attack("jwks")

KEYS = "Cannot fetch the identity provider's signing keys: "
NOT_KEYS = "The identity provider's JWKS is not a JSON object with keys."

CASES: dict[str, tuple[Fault, str]] = {
    "http-500": (HTTP_500, KEYS + "{issuer}/jwks answered HTTP 500."),
    "html-error-page": (
        Fault.html(200),
        "The JWKS endpoint did not answer with JSON (HTTP 200, text/html).",
    ),
    "no-keys-member": (Fault.json({"kids": []}), NOT_KEYS),
    "keys-not-a-list": (Fault.json({"keys": {"kid": "adv-1"}}), NOT_KEYS),
    "json-list": (Fault.json([{"kid": "adv-1"}]), NOT_KEYS),
    "junk-keys-only": (
        Fault.json({"keys": [1, "x", None, {"kty": "RSA", "kid": "adv-1"}, {"kid": "adv-1"}]}),
        "ID token rejected: no RS256 key 'adv-1' in the issuer's JWKS",
    ),
    "encryption-key-only": (
        Fault.json(
            {"keys": [{"kty": "RSA", "kid": "adv-1", "use": "enc", "n": "AQAB", "e": "AQAB"}]}
        ),
        "ID token rejected: no RS256 key 'adv-1' in the issuer's JWKS",
    ),
    "several-megabytes": (
        Fault.huge(),
        "The JWKS endpoint answer is too large (over 1048576 bytes).",
    ),
    "hangs": (Fault.hang(), KEYS + "{issuer}/jwks did not answer in time."),
    "connection-reset": (Fault.reset(), KEYS + "request to {issuer}/jwks failed ("),
}


@dataclass
class Exit:
    result: Result
    threads: list[str]  # threads still running when the interpreter began to shut down


def threads_at_exit(idp: LyingIdP, root: Path, name: str, **config: Any) -> Exit:
    """A login with a JWKS endpoint that answers slowly (or not), watched at its exit."""
    tenant = idp.tenant(name, jwks_fault=Fault.hang(), **config)
    box = Sandbox(root / name, tenant)
    report = box.root / "threads-at-exit.txt"
    env = box.env(EXLS_AUTH_HTTP_TIMEOUT="1", EXLS_TEST_THREADS_AT_EXIT=str(report))
    args = ("login", "--auth-flow", "device_code", "--email", EMAIL, "--no-qr")
    result = box.exls(*args, env=env, wrapper=THREADS_AT_EXIT_WRAPPER)
    return Exit(result, [line for line in report.read_text().splitlines() if line])


def scenarios(idp: LyingIdP, root: Path) -> Scenarios:
    exits = {
        # the device authorization answer is refused at once, the JWKS fetch still hangs
        "fails-fast-while-keys-load": partial(
            threads_at_exit, idp, root, "exit-fast", device_answer={"expires_in": "soon"}
        ),
        "fails-after-the-flow": partial(threads_at_exit, idp, root, "exit-after-flow"),
    }
    return exits | {
        name: partial(
            login_scenario,
            idp,
            root,
            name,
            jwks_fault=fault,
            env={"EXLS_AUTH_HTTP_TIMEOUT": "1"} if fault.kind == "hang" else {},
        )
        for name, (fault, _) in CASES.items()
    }


@pytest.mark.parametrize("name", ["fails-fast-while-keys-load"])
def test_a_failed_login_leaves_no_thread_running_at_exit(
    name: str, outcomes: Outcomes[Exit]
) -> None:
    exit_ = outcomes[name]
    assert exit_.result.rc == 1, exit_.result
    assert exit_.threads == []


@pytest.mark.attack("control")
@pytest.mark.parametrize("name", ["fails-after-the-flow"])
def test_the_thread_probe_sees_nothing_once_the_warm_up_is_over(
    name: str, outcomes: Outcomes[Exit]
) -> None:
    exit_ = outcomes[name]  # the warm-up gave up (1 s timeout) while the flow waited
    assert exit_.result.rc == 1, exit_.result
    assert "Cannot fetch the identity provider's signing keys" in exit_.result.error
    assert exit_.threads == []


@pytest.mark.parametrize("name", CASES)
def test_no_usable_keys_no_login(name: str, outcomes: Outcomes[Outcome]) -> None:
    outcome = outcomes[name]
    assert_clean_rejection(outcome.result, outcome.before, outcome.after)
    expected = CASES[name][1].format(issuer=outcome.tenant.issuer)
    assert outcome.result.error.startswith(expected), outcome.result
    assert outcome.previous_intact(), outcome.status
    assert outcome.tenant.hits["jwks"] <= 2  # one fetch, at most one refetch
    assert outcome.tenant.gave_up_on_every_hang(), outcome.tenant.hangs  # they last 30 s
