"""Sessions without a refresh token, renewed and revoked through the flow's contract hooks
(exls_flow_renew, exls_flow_revoke), and the session record of a workload.

The flow here is an in-process plugin registered like an installed one; the provider is the
session tests' local FakeIdP (discovery, revocation); the keyring is the in-memory backend.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from session_testkit import FakeIdP, MemoryKeyring, make_session

from exls_core import registry as registry_module
from exls_core.config import Settings
from exls_core.plugin import (
    FlowFailed,
    FlowRequest,
    NonceCheck,
    TokenResponse,
    Workload,
    hookimpl,
)
from exls_core.session import SessionExpired, SessionStore, current_session, logout
from exls_core.session.model import Session
from exls_core.session.validation import IdentityChanged

NOW = 1_700_000_000.0
SUBJECT = "repo:acme/train:ref:refs/heads/main"
CI_ISSUER = "https://token.actions.example"


class WorkloadFlow:
    """A flow that signs in a workload and renews by trading again (as exls_flows_workload)."""

    def __init__(self) -> None:
        self.renewals: list[FlowRequest] = []
        self.revoked: list[str] = []
        self.subject = SUBJECT
        self.revocable = True

    @hookimpl
    def exls_flow_priority(self, env: Any) -> float:
        return 1000

    @hookimpl
    def exls_flow_needs_person(self) -> bool:
        return False

    @hookimpl
    def exls_flow_renew(self, request: FlowRequest) -> TokenResponse:
        self.renewals.append(request)
        return TokenResponse(
            access_token=f"at-renewed-{len(self.renewals)}",
            expires_in=3600,
            nonce_check=NonceCheck.NOT_IN_PROTOCOL,
            workload=Workload(self.subject, CI_ISSUER),
        )

    @hookimpl
    def exls_flow_revoke(self, request: FlowRequest, access_token: str) -> bool:
        if not self.revocable:
            return False
        if access_token == "refuse":
            raise FlowFailed("the provider said no")
        self.revoked.append(access_token)
        return True


@pytest.fixture
def flow(monkeypatch: pytest.MonkeyPatch) -> Iterator[WorkloadFlow]:
    plugin = WorkloadFlow()
    load = registry_module.load_registry

    def with_plugin(**kwargs: Any) -> Any:
        return load(warn=kwargs["warn"], entries=[], extra_plugins={"ci": plugin})

    monkeypatch.setattr(registry_module, "load_registry", with_plugin)
    yield plugin


def stored(idp: FakeIdP, expires_in: float, flow: str = "ci", **more: Any) -> Session:
    session = make_session(
        idp.issuer,
        expires_at=NOW + expires_in,
        refresh_token=None,
        id_token=None,
        email=None,
        flow=flow,
        subject=SUBJECT,
        kind="workload",
        identity_issuer=CI_ISSUER,
        audience="https://api.example",
        **more,
    )
    SessionStore().save(session)
    return session


def at(settings: Settings, now: float = NOW) -> Session:
    return current_session(settings, store=SessionStore(), clock=lambda: now)


def test_a_workload_session_is_renewed_through_its_flow_under_the_lock(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP, flow: WorkloadFlow
) -> None:
    old = stored(idp, expires_in=30)  # inside the 60 s margin
    renewed = at(settings)
    assert renewed.access_token == "at-renewed-1" and renewed.expires_at == NOW + 3600
    assert (renewed.kind, renewed.subject, renewed.identity_issuer) == (
        "workload",
        SUBJECT,
        CI_ISSUER,
    )
    assert renewed.logged_in_at == old.logged_in_at and renewed.audience == old.audience
    assert SessionStore().load() == renewed
    [request] = flow.renewals
    assert (request.issuer, request.client_id, request.email) == (idp.issuer, "test-client", None)
    assert request.settings.flow_id == "ci"
    assert at(settings).access_token == "at-renewed-1"  # valid now: no second renewal
    assert len(flow.renewals) == 1


def test_a_renewal_naming_another_workload_ends_the_session(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP, flow: WorkloadFlow
) -> None:
    stored(idp, expires_in=0)
    flow.subject = "repo:evil/fork:ref:refs/heads/main"
    with pytest.raises(IdentityChanged, match="workload subject changed"):
        at(settings)
    assert SessionStore().load() is None


def test_without_a_renew_hook_a_session_without_refresh_token_just_expires(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP, flow: WorkloadFlow
) -> None:
    stored(idp, expires_in=-1, flow="pkce")  # pkce is not installed in this registry
    with pytest.raises(SessionExpired):
        at(settings)
    assert flow.renewals == []


def test_logout_lets_the_flow_revoke_with_what_only_it_knows(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP, flow: WorkloadFlow
) -> None:
    stored(idp, expires_in=600)
    result = logout(settings)
    assert result.was_logged_in and result.revocation_problem is None
    assert flow.revoked == ["at-initial"]
    assert idp.revoked == []  # core's own RFC 7009 call did not run as well
    assert SessionStore().load() is None


def test_logout_with_nothing_revocable_or_a_refusal_still_removes_the_session(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP, flow: WorkloadFlow
) -> None:
    flow.revocable = False
    stored(idp, expires_in=600)
    assert logout(settings).revocation_problem is None
    assert idp.revoked == [] and SessionStore().load() is None

    flow.revocable = True
    stored(idp, expires_in=600, access_token="refuse")
    assert logout(settings).revocation_problem == "the provider said no"
    assert SessionStore().load() is None


def test_a_session_stored_by_an_older_exls_reads_as_a_person() -> None:
    session = make_session("https://idp.example")
    data = json.loads(session.to_json())
    for name in ("audience", "kind", "identity_issuer"):
        del data[name]
    old = Session.from_json(json.dumps(data))
    assert (old.kind, old.audience, old.identity_issuer) == ("person", None, None)
    assert old.display_name == "alice@example.com"
    with pytest.raises(ValueError, match="not a session"):
        Session.from_json(json.dumps({**data, "kind": "robot"}))


def test_a_workload_is_shown_as_one() -> None:
    session = make_session("https://idp.example", kind="workload", subject=SUBJECT)
    assert session.display_name == f"workload {SUBJECT}"
