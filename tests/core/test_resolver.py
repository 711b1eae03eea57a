"""The auto resolver with in-process fake flows: ranking, ties, reasons, fallback, Ctrl+C."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from exls_core.config import Settings
from exls_core.errors import ExlsError, PluginError, UsageError
from exls_core.plugin import (
    FlowAvailable,
    FlowEnvironment,
    FlowFailed,
    FlowFallback,
    FlowRequest,
    FlowUnavailable,
    TokenResponse,
    hookimpl,
)
from exls_core.registry import load_registry
from exls_core.resolver import (
    choose,
    fit_provider,
    flow_settings,
    rank,
    run_flows,
    servable_flows,
)

ENV = FlowEnvironment(
    environ={}, platform="linux", stdin_is_terminal=False, stderr_is_terminal=False
)


@dataclass(eq=False)  # pluggy needs hashable plugin objects
class FakeFlow:
    """A flow plugin object: its hooks are methods, as pluggy allows."""

    priority: float | None = 10
    reason: str = "not here"
    outcome: Any = "ok"  # "ok", or an exception instance to raise
    title: str | None = None
    needs: str | None = None  # a discovery key the provider must have (exls_flow_supported)
    calls: list[str] = field(default_factory=list)

    @hookimpl
    def exls_flow_title(self) -> str | None:
        return self.title

    @hookimpl
    def exls_flow_priority(self, env: FlowEnvironment) -> float:
        if self.priority is None:
            raise FlowUnavailable(self.reason)
        return self.priority

    @hookimpl
    def exls_flow_supported(self, metadata: Any) -> None:
        if self.needs and self.needs not in metadata:
            raise FlowUnavailable(f"no {self.needs}.")

    @hookimpl
    def exls_flow_run(self, request: FlowRequest) -> TokenResponse:
        self.calls.append(request.nonce)
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return TokenResponse(access_token="at-" + request.nonce)


def registry(**flows: Any) -> Any:
    warnings: list[str] = []
    reg = load_registry(warn=warnings.append, entries=[], extra_plugins=flows)
    reg.test_warnings = warnings  # type: ignore[attr-defined]
    return reg


def request_for(flow: Any) -> FlowRequest:
    return FlowRequest(
        issuer="https://idp.test",
        metadata={},
        client_id="c",
        scopes=("openid",),
        nonce=flow.id,
        ui=None,  # type: ignore[arg-type]
        http=None,  # type: ignore[arg-type]
    )


def test_highest_priority_first_and_unavailable_dropped() -> None:
    reg = registry(a=FakeFlow(priority=10), b=FakeFlow(priority=90), c=FakeFlow(priority=None))
    assert [f.id for f in choose(reg, "auto", ENV).flows] == ["b", "a"]


def test_ties_are_broken_by_id_whatever_the_registration_order() -> None:
    assert [
        f.id for f in choose(registry(zeta=FakeFlow(5), alpha=FakeFlow(5)), "auto", ENV).flows
    ] == [
        "alpha",
        "zeta",
    ]
    assert [
        f.id for f in choose(registry(alpha=FakeFlow(5), zeta=FakeFlow(5)), "auto", ENV).flows
    ] == [
        "alpha",
        "zeta",
    ]


def test_rank_reports_reasons_of_unavailable_flows() -> None:
    reg = registry(a=FakeFlow(priority=None, reason="no display"), b=FakeFlow(priority=1))
    ranked = rank(reg, ENV)
    assert [(r.flow.id, r.priority, r.reason) for r in ranked] == [
        ("b", 1.0, None),
        ("a", None, "no display"),
    ]


def test_nothing_available_explains_every_reason() -> None:
    reg = registry(
        a=FakeFlow(priority=None, reason="no display"), b=FakeFlow(None, reason="no tty")
    )
    with pytest.raises(ExlsError, match=r"a: no display; b: no tty"):
        choose(reg, "auto", ENV)


def test_explicit_flow_runs_even_when_unavailable() -> None:
    reg = registry(a=FakeFlow(priority=None), b=FakeFlow(priority=1))
    assert [f.id for f in choose(reg, "a", ENV).flows] == ["a"]


def test_unknown_flow_is_a_usage_error_listing_installed_ones() -> None:
    reg = registry(device_code=FakeFlow(priority=1))
    with pytest.raises(UsageError) as err:
        choose(reg, "pkce", ENV)
    assert err.value.message == "flow 'pkce' is not installed; installed flows: device_code"
    assert err.value.exit_code == 2


def test_fallback_chain_announces_each_step() -> None:
    first = FakeFlow(90, outcome=FlowFallback("Browser authentication timed out."))
    second = FakeFlow(50, outcome=FlowFallback("Smart card not inserted."), title="smart card")
    third = FakeFlow(10, title="device code flow")
    reg = registry(pkce=first, card=second, device_code=third)
    notes: list[str] = []
    flow, _, response = run_flows(
        choose(reg, "auto", ENV).flows, request_for, notes.append, may_fall_back=True
    )
    assert flow.id == "device_code"
    assert response.access_token == "at-device_code"
    assert notes == [
        "Browser authentication timed out. Falling back to smart card...",
        "Smart card not inserted. Falling back to device code flow...",
    ]
    assert (first.calls, second.calls, third.calls) == (["pkce"], ["card"], ["device_code"])


def test_last_flow_falling_back_becomes_the_error() -> None:
    reg = registry(pkce=FakeFlow(90, outcome=FlowFallback("Browser authentication timed out.")))
    with pytest.raises(FlowFailed) as failed:
        run_flows(choose(reg, "auto", ENV).flows, request_for, lambda _: None, may_fall_back=True)
    assert failed.value.message == (
        "Browser authentication timed out; no other login flow can run here."
    )


def test_last_flow_falling_back_names_the_flows_the_provider_cannot_serve() -> None:
    reg = registry(pkce=FakeFlow(90, outcome=FlowFallback("Browser authentication timed out.")))
    notes: list[str] = []
    with pytest.raises(FlowFailed) as failed:
        run_flows(
            choose(reg, "auto", ENV).flows,
            request_for,
            notes.append,
            may_fall_back=True,
            unsupported=["device_code: the identity provider does not offer device login"],
        )
    assert failed.value.message == (
        "Browser authentication timed out; no other login flow can run here "
        "(device_code: the identity provider does not offer device login)."
    )
    assert notes == []


def test_explicit_flow_never_falls_back() -> None:
    later = FakeFlow(10)
    reg = registry(
        pkce=FakeFlow(90, outcome=FlowFallback("Browser authentication timed out.")), d=later
    )
    notes: list[str] = []
    with pytest.raises(FlowFailed):
        run_flows(choose(reg, "pkce", ENV).flows, request_for, notes.append, may_fall_back=False)
    assert notes == [] and later.calls == []


def test_plain_failure_does_not_fall_back() -> None:
    later = FakeFlow(10)
    reg = registry(a=FakeFlow(90, outcome=FlowFailed("Login was denied.")), b=later)
    with pytest.raises(FlowFailed, match=r"Login was denied\."):
        run_flows(choose(reg, "auto", ENV).flows, request_for, lambda _: None, may_fall_back=True)
    assert later.calls == []


def test_ctrl_c_never_falls_back() -> None:
    later = FakeFlow(10)
    reg = registry(a=FakeFlow(90, outcome=KeyboardInterrupt()), b=later)
    with pytest.raises(KeyboardInterrupt):
        run_flows(choose(reg, "auto", ENV).flows, request_for, lambda _: None, may_fall_back=True)
    assert later.calls == []


def test_each_attempt_gets_a_fresh_request() -> None:
    reg = registry(a=FakeFlow(90, outcome=FlowFallback("x.")), b=FakeFlow(10))
    seen: list[str] = []

    def make(flow: Any) -> FlowRequest:
        seen.append(flow.id)
        return request_for(flow)

    run_flows(choose(reg, "auto", ENV).flows, make, lambda _: None, may_fall_back=True)
    assert seen == ["a", "b"]


class Exploding:
    @hookimpl
    def exls_flow_priority(self, env: FlowEnvironment) -> float:
        raise RuntimeError("boom")


class Chatty:
    @hookimpl
    def exls_flow_priority(self, env: FlowEnvironment) -> str:
        return "high"


@pytest.mark.parametrize("plugin", [Exploding(), Chatty(), object()])
def test_a_flow_whose_check_misbehaves_is_marked_broken_not_fatal(plugin: Any) -> None:
    reg = registry(bad=plugin, good=FakeFlow(1))
    assert [f.id for f in choose(reg, "auto", ENV).flows] == ["good"]
    assert "bad" in reg.broken and "bad" not in reg.flows
    assert len(reg.test_warnings) == 1 and "skipping flow plugin 'bad'" in reg.test_warnings[0]


def test_strict_mode_turns_a_broken_check_into_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXLS_STRICT_PLUGINS", "1")
    reg = registry(bad=Exploding(), good=FakeFlow(1))
    with pytest.raises(PluginError, match="RuntimeError: boom"):
        choose(reg, "auto", ENV)


def test_explicitly_choosing_a_broken_flow_fails_with_its_error() -> None:
    reg = registry(bad=Exploding(), good=FakeFlow(1))
    rank(reg, ENV)
    with pytest.raises(PluginError, match="cannot use flow plugin 'bad'"):
        choose(reg, "bad", ENV)


def test_a_flow_returning_garbage_is_a_plugin_error() -> None:
    class Garbage(FakeFlow):
        @hookimpl
        def exls_flow_run(self, request: FlowRequest) -> Any:
            return {"access_token": "x"}

    reg = registry(g=Garbage(1))
    with pytest.raises(PluginError, match="instead of a TokenResponse"):
        run_flows(choose(reg, "auto", ENV).flows, request_for, lambda _: None, may_fall_back=True)


# -- why a flow was chosen: the line exls login prints before the flow starts ----------------


class Reasoned(FakeFlow):
    """A flow that says why it suits this place."""

    @hookimpl
    def exls_flow_priority(self, env: FlowEnvironment) -> Any:
        if self.priority is None:
            raise FlowUnavailable(self.reason)
        return FlowAvailable(self.priority, "a display and xdg-open")


def test_auto_says_why_the_first_flow_was_chosen() -> None:
    reg = registry(pkce=Reasoned(90, title="browser flow (PKCE)"), device_code=FakeFlow(10))
    choice = choose(reg, "auto", ENV)
    assert choice.why == "Using the browser flow (PKCE): a display and xdg-open."
    assert [r.reason for r in rank(reg, ENV)] == ["a display and xdg-open", None]

    bare = registry(device_code=FakeFlow(10, title="device code flow"))
    assert choose(bare, "auto", ENV).why == (
        "Using the device code flow, the best flow available here."
    )


def test_auto_names_the_flows_it_skipped_and_why() -> None:
    reg = registry(
        pkce=Reasoned(None, reason="No browser here (SSH session without a forwarded display)"),
        device_code=FakeFlow(10, title="device code flow"),
    )
    assert choose(reg, "auto", ENV).why == (
        "No browser here (SSH session without a forwarded display): using the device code flow."
    )


def test_an_explicit_flow_says_it_was_requested_and_what_it_thinks_of_this_place() -> None:
    reg = registry(pkce=Reasoned(None, reason="CI is set", title="browser flow (PKCE)"))
    assert choose(reg, "pkce", ENV).why == (
        "Using the browser flow (PKCE), as requested, although: CI is set."
    )
    fine = registry(pkce=Reasoned(90, title="browser flow (PKCE)"))
    assert choose(fine, "pkce", ENV).why == "Using the browser flow (PKCE), as requested."


def test_a_flow_available_with_a_bad_reason_is_broken() -> None:
    class BadReason(FakeFlow):
        @hookimpl
        def exls_flow_priority(self, env: FlowEnvironment) -> Any:
            return FlowAvailable(5, 42)  # type: ignore[arg-type]

    reg = registry(bad=BadReason(), good=FakeFlow(1))
    assert [f.id for f in choose(reg, "auto", ENV).flows] == ["good"]
    assert "reason is no str" in reg.broken["bad"].error


def test_only_a_flow_with_a_successor_may_fall_back() -> None:
    seen: list[tuple[str, bool]] = []

    class Recording(FakeFlow):
        @hookimpl
        def exls_flow_run(self, request: FlowRequest) -> TokenResponse:
            seen.append((request.nonce, request.can_fall_back))
            return super().exls_flow_run(request)

    reg = registry(
        a=Recording(90, outcome=FlowFallback("Browser authentication timed out.")),
        b=Recording(10),
    )
    notes: list[str] = []
    auto = choose(reg, "auto", ENV).flows
    run_flows(auto, request_for, notes.append, may_fall_back=True)
    assert seen == [("a", True), ("b", False)]
    seen.clear()
    with pytest.raises(FlowFailed):
        run_flows(choose(reg, "a", ENV).flows, request_for, notes.append, may_fall_back=False)
    assert seen == [("a", False)]


def test_the_fallback_line_carries_the_hint() -> None:
    hint = "Next time try --no-browser."
    reg = registry(
        a=FakeFlow(90, outcome=FlowFallback("Browser authentication timed out.", hint=hint)),
        b=FakeFlow(10, title="device code flow"),
    )
    notes: list[str] = []
    run_flows(choose(reg, "auto", ENV).flows, request_for, notes.append, may_fall_back=True)
    assert notes == [
        "Browser authentication timed out. Next time try --no-browser. "
        "Falling back to device code flow..."
    ]


# --- fit_provider: flows the identity provider cannot serve ------------------------------


def test_auto_drops_the_flows_the_provider_cannot_serve_and_says_why() -> None:
    reg = registry(a=FakeFlow(90), d=FakeFlow(50, needs="device_authorization_endpoint"))
    usable, unsupported = fit_provider(choose(reg, "auto", ENV).flows, {}, explicit=False)
    assert [flow.id for flow in usable] == ["a"]
    assert unsupported == ["d: no device_authorization_endpoint"]


def test_a_flow_named_explicitly_fails_in_one_line_when_the_provider_cannot_serve_it() -> None:
    reg = registry(d=FakeFlow(50, needs="device_authorization_endpoint"))
    with pytest.raises(FlowFailed) as failed:
        fit_provider(choose(reg, "d", ENV).flows, {}, explicit=True)
    assert failed.value.message == "no device_authorization_endpoint." and failed.value.hint is None


def test_no_flow_the_provider_can_serve() -> None:
    reg = registry(a=FakeFlow(90, needs="authorization_endpoint"), d=FakeFlow(50, needs="x"))
    with pytest.raises(
        ExlsError,
        match=r"No login flow can run with this identity provider "
        r"\(a: no authorization_endpoint; d: no x\)\.",
    ):
        fit_provider(choose(reg, "auto", ENV).flows, {}, explicit=False)


def test_a_flow_without_the_hook_serves_any_provider() -> None:
    reg = registry(a=FakeFlow(90))
    assert [f.id for f in fit_provider(choose(reg, "auto", ENV).flows, {}, explicit=False)[0]] == [
        "a"
    ]


def test_a_support_check_that_raises_something_else_is_a_plugin_error() -> None:
    class Broken(FakeFlow):
        @hookimpl
        def exls_flow_supported(self, metadata: Any) -> None:
            raise KeyError("oops")

    reg = registry(b=Broken(90))
    with pytest.raises(PluginError, match="exls_flow_supported raised KeyError"):
        fit_provider(choose(reg, "auto", ENV).flows, {}, explicit=False)


# --- FlowRequest.scope_refused: invalid_scope ---------------------------------------------


def scope_request(scopes: tuple[str, ...], **metadata: Any) -> FlowRequest:
    return FlowRequest(
        issuer="https://idp.example",
        metadata=metadata,
        client_id="c",
        scopes=scopes,
        nonce="n",
        ui=None,  # type: ignore[arg-type]
        http=None,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("scopes", "metadata", "description", "message"),
    [
        (
            ("openid", "email", "offline_access"),
            {"scopes_supported": ["openid", "email"]},
            None,
            'The identity provider does not accept the scope "offline_access" (invalid_scope); '
            'remove it from EXLS_AUTH_SCOPES, e.g. EXLS_AUTH_SCOPES="openid email".',
        ),
        (
            ("openid", "read:all", "https://graph.example/User.Read"),
            {},
            "Some requested scopes were invalid. {invalid=[https://graph.example/User.Read]}",
            'The identity provider does not accept the scope "https://graph.example/User.Read" '
            "(invalid_scope: Some requested scopes were invalid. "
            "{invalid=[https://graph.example/User.Read]}); remove it from EXLS_AUTH_SCOPES, "
            'e.g. EXLS_AUTH_SCOPES="openid read:all".',
        ),
        (
            ("openid", "a", "b"),
            {},
            "The scopes 'a', 'b' are not allowed.",
            'The identity provider does not accept the scopes "a b" (invalid_scope: The scopes '
            "'a', 'b' are not allowed); remove them from EXLS_AUTH_SCOPES, "
            'e.g. EXLS_AUTH_SCOPES="openid".',
        ),
        (
            ("openid", "profile"),
            {},
            "requested scope is not allowed",
            'The identity provider does not accept the requested scopes "openid profile" '
            "(invalid_scope: requested scope is not allowed); set EXLS_AUTH_SCOPES to the "
            "scopes it allows for this client.",
        ),
        (  # the provider refuses openid itself: nothing sensible to suggest
            ("openid", "profile"),
            {"scopes_supported": ["profile"]},
            None,
            'The identity provider does not accept the requested scopes "openid profile" '
            "(invalid_scope); set EXLS_AUTH_SCOPES to the scopes it allows for this client.",
        ),
    ],
)
def test_scope_refused_names_the_scope_and_the_setting(
    scopes: tuple[str, ...], metadata: dict[str, Any], description: str | None, message: str
) -> None:
    refused = scope_request(scopes, **metadata).scope_refused(description)
    assert isinstance(refused, FlowFailed)
    assert refused.message == message and refused.hint is None


# --- a flow plugin whose run hook has a bug ---------------------------------------------


def test_a_flow_that_crashes_is_one_line_naming_the_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXLS_STRICT_PLUGINS", raising=False)
    reg = registry(buggy=FakeFlow(90, outcome=TypeError("from_json() got an unexpected 'x'")))
    with pytest.raises(PluginError) as failed:
        run_flows(choose(reg, "auto", ENV).flows, request_for, lambda _: None, may_fall_back=True)
    assert failed.value.message == (
        "flow 'buggy' (in-process 0) failed: TypeError: from_json() got an unexpected 'x'"
    )
    assert failed.value.hint is not None and "EXLS_STRICT_PLUGINS=1" in failed.value.hint
    assert isinstance(failed.value.__cause__, TypeError)


def test_a_crashing_flow_keeps_its_traceback_in_strict_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXLS_STRICT_PLUGINS", "1")
    reg = registry(buggy=FakeFlow(90, outcome=TypeError("boom")))
    with pytest.raises(TypeError, match="boom"):
        run_flows(choose(reg, "auto", ENV).flows, request_for, lambda _: None, may_fall_back=True)


@pytest.mark.parametrize("error", [EOFError(), KeyboardInterrupt()])
def test_end_of_input_and_ctrl_c_pass_through_a_flow(error: BaseException) -> None:
    reg = registry(reader=FakeFlow(90, outcome=error))
    with pytest.raises(type(error)):
        run_flows(choose(reg, "auto", ENV).flows, request_for, lambda _: None, may_fall_back=True)


def test_servable_flows_are_the_installed_ones_the_provider_can_serve() -> None:
    class CrashingSupport(FakeFlow):
        @hookimpl
        def exls_flow_supported(self, metadata: Any) -> None:
            raise RuntimeError("bug")

    reg = registry(
        pkce=FakeFlow(90),
        device_code=FakeFlow(None, needs="device_authorization_endpoint"),  # unavailable here
        crashing=CrashingSupport(5),
    )
    # Availability here does not matter (--auth-flow runs a flow anyway); the provider does.
    assert servable_flows(reg, {"device_authorization_endpoint": "x"}) == ("pkce", "device_code")
    assert servable_flows(reg, {}) == ("pkce",)


def test_auto_shows_the_chosen_flows_own_reason_not_another_flows() -> None:
    # The browser flow cannot run and says why; the plugin can, and says why: its reason wins.
    reg = registry(
        pkce=Reasoned(None, reason="No browser here (SSH session without a forwarded display)"),
        acme=Reasoned(200, title="acme flow"),
        device_code=FakeFlow(10, title="device code flow"),
    )
    assert choose(reg, "auto", ENV).why == "Using the acme flow: a display and xdg-open."


# -- the availability check sees the flow's settings (issue 25, item 2) ----------------------


@dataclass(eq=False)
class NeedsReader(FakeFlow):
    """Available only when its own setting `reader` is set, wherever that comes from."""

    seen: list[Any] = field(default_factory=list)

    @hookimpl
    def exls_flow_priority(self, env: FlowEnvironment) -> float:
        self.seen.append(env.settings)
        if not env.settings.get("reader"):
            raise FlowUnavailable(f"{env.settings.variable('reader')} is not set")
        return 300


def test_the_priority_check_sees_a_setting_from_the_config_file_only() -> None:
    config = Settings(flow_tables={"acme": {"reader": "Yubikey"}}, source="/etc/exls.toml")
    acme = NeedsReader()
    reg = registry(acme=acme, device_code=FakeFlow(10))
    assert [r.flow.id for r in rank(reg, ENV, flow_settings(config)) if r.available] == [
        "acme",
        "device_code",
    ]
    assert choose(reg, "auto", ENV, flow_settings(config)).flows[0].id == "acme"
    # Without the table it says which variable to set: the flow's own, with its id in it.
    bare = rank(reg, ENV, flow_settings(Settings()))
    assert bare[1].reason == "EXLS_AUTH_ACME_READER is not set"


def test_the_check_and_the_run_get_the_same_settings() -> None:
    config = Settings(flow_tables={"acme": {"reader": "Yubikey"}})
    settings_for = flow_settings(config, {"qr": False})
    check, run = settings_for("acme"), settings_for("acme")
    for name in ("reader", "qr", "callback_ports", "timeout"):
        assert check.get(name) == run.get(name)
    assert (check.get("reader"), check.get("qr")) == ("Yubikey", False)


def test_a_forced_flow_is_checked_with_its_settings_too() -> None:
    acme = NeedsReader()
    reg = registry(acme=acme)
    config = Settings(flow_tables={"acme": {"reader": "Yubikey"}})
    assert (
        choose(reg, "acme", ENV, flow_settings(config)).why == "Using the acme flow, as requested."
    )
    assert acme.seen[-1].get("reader") == "Yubikey"


def test_a_secret_in_the_file_is_said_once_however_often_it_is_read() -> None:
    warnings: list[str] = []
    config = Settings(flow_tables={"acme": {"token": "t"}})
    settings_for = flow_settings(config, warn=warnings.append)
    for _ in range(3):
        assert settings_for("acme").get("token", secret=True) == "t"
    assert len(warnings) == 1 and "EXLS_AUTH_ACME_TOKEN" in warnings[0]
