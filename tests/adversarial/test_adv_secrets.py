"""Secrets hygiene: no token, code, device code or verifier anywhere but where it belongs.

Every exls run here is ``python -X dev -W always`` with root logging at DEBUG (exls has no
logging switch of its own, so this is the most any library it uses can be made to say).
Access tokens live one second, so every ``exls auth token`` refreshes. The lying provider
issues distinctive random values and records them, and the PKCE verifiers it receives.
Afterwards every file under HOME, the XDG directories, the runtime directory and TMPDIR,
every file name, and every stdout and stderr is searched for each of them. Allowed: the
test keyring (the stand-in for the OS keyring; exactly its directory is skipped) and the
stdout of ``exls auth token``, which must be the current access token and nothing else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from adv_kit import EMAIL, Outcomes, Result, Sandbox, Scenarios
from lying_idp import HTTP_500, LyingIdP, Tenant, rsa_key

pytestmark = pytest.mark.attack("secrets")


@dataclass
class Trace:
    tenant: Tenant
    box: Sandbox
    token_outputs: list[str] = field(default_factory=list)
    findable_in_keyring: bool = False


def good_refresh_id_token(tenant: Tenant, context: dict[str, Any]) -> str:
    return tenant.good_id_token(context)


def run(box: Sandbox, trace: Trace, *args: str, expect: int = 0, **env: str) -> Result:
    result = box.exls(*args, env=box.env(PYTHONWARNINGS="always", **env), debug=True)
    assert result.rc == expect, result
    assert "DEBUG:" in result.err or args[:2] == ("auth", "status"), result  # logging is on
    if args[:2] == ("auth", "token") and result.rc == 0:
        trace.token_outputs.append(result.out)
    return result


def life_of_a_session(idp: LyingIdP, root: Path, flow: str) -> Trace:
    """Log in, refresh twice, check the status, log out, with everything as loud as it gets."""
    tenant = idp.tenant(
        f"secrets-{flow}", access_lifetime=1, refresh_id_token=good_refresh_id_token
    )
    box = Sandbox(root / flow, tenant)
    trace = Trace(tenant, box)
    login = ("login", "--auth-flow", flow, "--email", EMAIL, "--no-qr")
    run(box, trace, *login)
    stored = "".join(box.keyring().values())
    trace.findable_in_keyring = tenant.all_secrets()["refresh_token"][-1] in stored
    run(box, trace, "auth", "token")
    run(box, trace, "auth", "token")
    run(box, trace, "auth", "status", "--json")
    run(box, trace, "logout")
    run(box, trace, "auth", "status", expect=1)
    return trace


def failures(idp: LyingIdP, root: Path) -> Trace:
    """Tokens issued and then refused: they must end up nowhere, not even in the keyring."""
    tenant = idp.tenant(
        "secrets-refused",
        id_token=lambda t, c: rsa_key("adv-attacker").sign(
            t.claims_for(c.get("nonce")), kid="adv-1"
        ),
    )
    box = Sandbox(root / "refused", tenant)
    trace = Trace(tenant, box)
    box.seed()
    for flow in ("device_code", "pkce"):
        run(box, trace, "login", "--auth-flow", flow, "--email", EMAIL, "--no-qr", expect=1)
    tenant.refresh_fault = HTTP_500
    box.seed(expires_at=0.0)  # expired: the next token request refreshes, and fails
    run(box, trace, "auth", "token", expect=1)
    tenant.revoke_fault = HTTP_500
    run(box, trace, "logout")
    return trace


def scenarios(idp: LyingIdP, root: Path) -> Scenarios:
    return {
        "device_code": partial(life_of_a_session, idp, root, "device_code"),
        "pkce": partial(life_of_a_session, idp, root, "pkce"),
        "refused": partial(failures, idp, root),
    }


def needles(tenant: Tenant) -> dict[str, set[str]]:
    """Every secret, and for JWTs their signature part alone, by kind."""
    found: dict[str, set[str]] = {}
    for kind, values in tenant.all_secrets().items():
        found[kind] = set(values)
        if kind == "id_token":
            found[kind] |= {value.rsplit(".", 1)[-1] for value in values if value.count(".") == 2}
    return found


def written_files(box: Sandbox) -> list[Path]:
    files = []
    for top in (box.home, box.runtime, box.tmp):
        for directory, dirnames, filenames in os.walk(top):
            if Path(directory) == box.keyring_dir:
                dirnames.clear()
                continue
            files += [Path(directory) / name for name in filenames]
    return [f for f in files if box.keyring_dir not in f.parents and f != box.browser]


def hits(trace: Trace, *, include_keyring: bool = False, include_token: bool = False) -> list[str]:
    box = trace.box
    haystacks: list[tuple[str, bytes]] = []
    files = written_files(box)
    if include_keyring:
        files += sorted(box.keyring_dir.iterdir())
    for path in files:
        haystacks.append((f"file {path.relative_to(box.root)}", path.read_bytes()))
        haystacks.append((f"name {path.relative_to(box.root)}", str(path).encode()))
    for number, result in enumerate(box.runs):
        label = f"run {number} (exls {' '.join(result.args)})"
        if result.args[:2] != ("auth", "token") or include_token:
            haystacks.append((f"{label} stdout", result.out.encode()))
        haystacks.append((f"{label} stderr", result.err.encode()))
    found = []
    for kind, values in needles(trace.tenant).items():
        for value in values:
            for where, text in haystacks:
                if value and value.encode() in text:
                    found.append(f"{kind} in {where}")
    return sorted(set(found))


@pytest.mark.parametrize("name", ["device_code", "pkce"])
def test_a_whole_session_leaves_no_secret_behind(name: str, outcomes: Outcomes[Trace]) -> None:
    trace = outcomes[name]
    issued = trace.tenant.all_secrets()
    expected = {"access_token", "refresh_token", "id_token"} | (
        {"device_code"} if name == "device_code" else {"code", "code_verifier"}
    )
    assert expected <= set(issued), issued.keys()  # every kind was really exercised
    assert len(issued["access_token"]) == 3  # the login and two refreshes
    assert trace.findable_in_keyring
    # the search finds what is where it belongs: the printed tokens
    assert [hit for hit in hits(trace, include_token=True) if "auth token" in hit] != []
    assert len(written_files(trace.box)) >= 3  # caches, state and lock files were searched
    assert hits(trace) == []
    # `exls auth token` printed the token of the moment, and nothing else
    assert trace.token_outputs == [f"{token}\n" for token in issued["access_token"][1:]]


@pytest.mark.parametrize("name", ["refused"])
def test_refused_tokens_leave_no_trace_at_all(name: str, outcomes: Outcomes[Trace]) -> None:
    trace = outcomes[name]
    issued = trace.tenant.all_secrets()
    assert {"access_token", "id_token", "device_code", "code", "code_verifier"} <= set(issued)
    assert hits(trace, include_keyring=True) == []
