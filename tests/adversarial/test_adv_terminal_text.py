"""Provider text that tries to talk to the terminal (issue 23, item 7), through the CLI.

Escape sequences (clear the screen, set the window title, an OSC 8 hyperlink to elsewhere)
and a bidi override, in every place a provider's words reached the terminal raw: the
authorization endpoint (also inside the OSC 8 link), discovery errors, URLs in network
errors, a redirect's Location, error codes of refresh and revocation, and the email and
subject that ``login`` and ``auth status`` print. Not one control character may reach
stdout or stderr; the command ends as it would for plain text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from adv_kit import Result, Sandbox, Scenarios
from lying_idp import Fault, LyingIdP, Tenant

from exls_core.text import is_control

pytestmark = pytest.mark.attack("terminal_text")

ASCII_ESCAPES = "\x1b[2J\x1b]0;pwned\x07"  # for an HTTP header (latin-1 only)
ESCAPES = ASCII_ESCAPES + "\u202e"
LINK = "\x1b]8;;https://evil.example/\x1b\\"


@dataclass
class Runs:
    tenant: Tenant
    results: list[Result]


def login_then_status(idp: LyingIdP, root: Path, name: str, flow: str, **config: Any) -> Runs:
    tenant = idp.tenant(name, **config)
    box = Sandbox(root / name, tenant)
    login = box.login(flow)
    return Runs(tenant, [login, box.exls("auth", "status")])


def refresh(idp: LyingIdP, root: Path, name: str, **config: Any) -> Runs:
    tenant = idp.tenant(name, **config)
    box = Sandbox(root / name, tenant)
    box.seed(expires_at=time.time() - 30)
    return Runs(tenant, [box.exls("auth", "token")])


def logout(idp: LyingIdP, root: Path, name: str, **config: Any) -> Runs:
    tenant = idp.tenant(name, **config)
    box = Sandbox(root / name, tenant)
    box.seed()
    return Runs(tenant, [box.exls("logout")])


def identity(tenant: Tenant, context: dict[str, Any]) -> str:
    claims = tenant.claims_for(context.get("nonce"), sub=f"auth0|{ESCAPES}")
    claims["email"] = f"{ESCAPES}alice@example.com{LINK}"
    return tenant.signer.sign(claims)


def endpoint(key: str, value: str, flow: str = "device_code") -> Any:
    return lambda idp, root, name: login_then_status(
        idp, root, name, flow, discovery_extra={key: value}
    )


# name -> (scenario, the exit codes of its runs, a line its stderr must contain)
CASES: dict[str, tuple[Any, tuple[int, ...], str]] = {
    "email-and-subject-at-login-and-status": (
        lambda idp, root, name: login_then_status(
            idp, root, name, "device_code", id_token=identity
        ),
        (0, 0),
        "Logged in as ",
    ),
    "authorization-endpoint-in-the-link": (
        endpoint("authorization_endpoint", f"https://idp.example/authorize{LINK}", "pkce"),
        (1, 1),
        "Error: The identity provider's discovery document has an invalid authorization_endpoint.",
    ),
    "discovery-error-naming-an-endpoint": (
        endpoint("token_endpoint", f"http://evil.example/{ESCAPES}"),
        (1, 1),
        "Error: The identity provider's discovery document has an invalid token_endpoint.",
    ),
    "url-in-a-network-error": (
        endpoint("device_authorization_endpoint", f"https://127.0.0.1:1/{ESCAPES}"),
        (1, 1),
        "Error: The identity provider's discovery document has an invalid "
        "device_authorization_endpoint.",
    ),
    "redirect-location": (
        lambda idp, root, name: login_then_status(
            idp,
            root,
            name,
            "device_code",
            discovery_fault=Fault.redirect(f"https://evil.example/{ASCII_ESCAPES}", 302),
        ),
        (1, 1),
        "(a redirect to https://evil.example/",
    ),
    "refresh-error-code": (
        lambda idp, root, name: refresh(
            idp, root, name, refresh_fault=Fault.json({"error": f"bad{ESCAPES}"}, 400)
        ),
        (1,),
        "Error: Could not refresh the session: the identity provider answered HTTP 400 (bad",
    ),
    "revocation-error-code": (
        lambda idp, root, name: logout(
            idp, root, name, revoke_fault=Fault.json({"error": f"bad{ESCAPES}"}, 400)
        ),
        (0,),
        "Warning: could not revoke the tokens at the identity provider (",
    ),
}


def scenarios(idp: LyingIdP, root: Path) -> Scenarios:
    return {name: partial(make, idp, root, name) for name, (make, _, _) in CASES.items()}


@pytest.mark.parametrize("name", CASES)
def test_no_provider_text_reaches_the_terminal_raw(name: str, outcomes: Any) -> None:
    runs: Runs = outcomes[name]
    _, codes, expected = CASES[name]
    assert tuple(result.rc for result in runs.results) == codes, runs.results
    assert expected in runs.results[0].err, runs.results[0]
    for result in runs.results:
        for stream in (result.out, result.err):
            controls = sorted({hex(ord(ch)) for ch in stream if ch != "\n" and is_control(ch)})
            assert controls == [], (controls, result)
