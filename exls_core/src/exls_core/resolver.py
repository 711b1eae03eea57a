"""Choosing and running a login flow: ``auto`` ranks the available flows, explicit never falls back.

Like keyring's backend priorities: a flow's priority check returns a number or raises with
the reason it cannot run; the highest number wins, ties go to the smaller flow id so the
choice never depends on install order.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from exls_core.entry_points import require_installed
from exls_core.errors import ExlsError, PluginError
from exls_core.plugin import (
    FlowEnvironment,
    FlowFailed,
    FlowFallback,
    FlowRequest,
    FlowSettings,
    FlowUnavailable,
    TokenResponse,
)
from exls_core.registry import Flow, Registry, strict_plugins

if TYPE_CHECKING:
    from exls_core.config import Settings

SettingsFor = Callable[[str], FlowSettings]  # a flow id -> that flow's settings

AUTO = "auto"


def current_environment(*, launch_browser: bool = True) -> FlowEnvironment:
    def isatty(stream: object) -> bool:
        try:
            return bool(stream.isatty())  # type: ignore[attr-defined]
        except (AttributeError, ValueError):
            return False

    return FlowEnvironment(
        environ=dict(os.environ),
        platform=sys.platform,
        stdin_is_terminal=isatty(sys.stdin),
        stderr_is_terminal=isatty(sys.stderr),
        launch_browser=launch_browser,
    )


def flow_settings(
    settings: Settings,
    options: Mapping[str, Any] | None = None,
    warn: Callable[[str], None] | None = None,
) -> SettingsFor:
    """Each flow's FlowSettings for this command, built one way for its availability check
    and its run (so ``auth flows`` and ``login`` agree): the settings core reads for flows,
    this login's ``options`` (``--no-qr``) and the flow's ``[flows.<id>]`` table. Each
    warning (a secret in the config file) is said once, however often it is read."""
    from exls_core.config import FLOW_SETTINGS

    handed = {name: getattr(settings, name) for name in FLOW_SETTINGS} | dict(options or {})
    said: set[str] = set()

    def say(text: str) -> None:
        if warn is not None and text not in said:
            said.add(text)
            warn(text)

    def settings_for(flow_id: str) -> FlowSettings:
        return FlowSettings(
            flow_id,
            handed,
            file_table=settings.flow_tables.get(flow_id),
            file_path=settings.source,
            warn=say,
        )

    return settings_for


def _env_for(flow: Flow, env: FlowEnvironment, settings_for: SettingsFor | None) -> FlowEnvironment:
    return env if settings_for is None else replace(env, settings=settings_for(flow.id))


@dataclass(frozen=True)
class Ranked:
    """One installed flow as ``auto`` sees it right now."""

    flow: Flow
    priority: float | None
    reason: str | None  # why it is unavailable, or why it suits this place (when it says)
    mention: bool = True  # say why it is unavailable at login (FlowUnavailable.mention)

    @property
    def available(self) -> bool:
        return self.priority is not None


def rank(
    registry: Registry, env: FlowEnvironment, settings_for: SettingsFor | None = None
) -> list[Ranked]:
    """Every loaded flow with its priority or reason, best first; broken ones are dropped.
    Each flow's check sees its own settings (``settings_for``) in ``env.settings``."""
    ranked = []
    for flow in list(registry.flows.values()):
        try:
            available = flow.priority(_env_for(flow, env, settings_for))
            ranked.append(Ranked(flow, available.priority, available.reason))
        except FlowUnavailable as exc:
            ranked.append(Ranked(flow, None, str(exc) or "not available here", exc.mention))
        except PluginError as exc:
            registry.mark_broken(flow, exc.message)
    ranked.sort(key=lambda r: (r.priority is None, -(r.priority or 0.0), r.flow.id))
    return ranked


@dataclass(frozen=True)
class Choice:
    """The flows to try, in order, and the line that tells the user why the first one."""

    flows: list[Flow]
    why: str


def choose(
    registry: Registry,
    requested: str,
    env: FlowEnvironment,
    settings_for: SettingsFor | None = None,
) -> Choice:
    """The explicit flow alone, or the available ones for ``auto``, best first."""
    if requested != AUTO:
        require_installed(requested, registry.installed_ids, registry.disabled)
        if requested in registry.broken:
            raise PluginError(
                registry.broken[requested].warning.replace("skipping", "cannot use", 1)
            )
        flow = registry.flows[requested]  # forced: run it even if it says it is unavailable
        return Choice([flow], _why_forced(flow, _env_for(flow, env, settings_for)))
    ranked = rank(registry, env, settings_for)
    chosen = [r.flow for r in ranked if r.available]
    if not chosen:
        reasons = (
            "; ".join(f"{r.flow.id}: {r.reason}" for r in ranked) or "no flow plugin is installed"
        )
        raise ExlsError(
            f"No login flow can run here ({reasons}).",
            hint="Install a flow plugin (e.g. exls-flows-device) or choose one with --auth-flow.",
        )
    return Choice(chosen, _why_auto(ranked))


def _why_auto(ranked: list[Ranked]) -> str:
    """``Using X: <X's own reason>.`` or, when X gives none, why the others could not run:
    ``No browser here (SSH ...): using the device code flow.``"""
    best = next(r for r in ranked if r.available)
    if best.reason:  # the chosen flow's own word, never another flow's
        return f"Using the {best.flow.title}: {best.reason}."
    skipped = [r.reason for r in ranked if not r.available and r.reason and r.mention]
    if skipped:
        return f"{'; '.join(skipped)}: using the {best.flow.title}."
    return f"Using the {best.flow.title}, the best flow available here."


def _why_forced(flow: Flow, env: FlowEnvironment) -> str:
    """A flow named with --auth-flow runs in any case; say so, and what it thinks of this place."""
    try:
        flow.priority(env)
    except FlowUnavailable as exc:
        return f"Using the {flow.title}, as requested, although: {exc}."
    except PluginError:
        pass  # its run will tell
    return f"Using the {flow.title}, as requested."


def fit_provider(
    flows: list[Flow], metadata: Mapping[str, Any], *, explicit: bool
) -> tuple[list[Flow], list[str]]:
    """The flows this identity provider can serve, and why the others cannot ("id: reason").

    A flow named with --auth-flow that the provider cannot serve fails here, in one line.
    """
    usable, unsupported = [], []
    for flow in flows:
        reason = flow.unsupported(metadata)
        if reason is None:
            usable.append(flow)
        elif explicit:
            raise FlowFailed(reason)
        else:
            unsupported.append(f"{flow.id}: {reason.rstrip('.')}")
    if not usable:
        raise ExlsError(
            f"No login flow can run with this identity provider ({'; '.join(unsupported)})."
        )
    return usable, unsupported


def servable_flows(registry: Registry, metadata: Mapping[str, Any]) -> tuple[str, ...]:
    """Ids of the installed flows this identity provider can serve: the ones a hint may name."""
    servable = []
    for flow in registry.flows.values():
        try:
            if flow.unsupported(metadata) is None:
                servable.append(flow.id)
        except PluginError:
            if strict_plugins():
                raise
            # not worth suggesting; choosing it says why
    return tuple(servable)


def run_flows(
    flows: list[Flow],
    make_request: Callable[[Flow], FlowRequest],
    notify: Callable[[str], None],
    *,
    may_fall_back: bool,
    unsupported: Sequence[str] = (),
) -> tuple[Flow, FlowRequest, TokenResponse]:
    """Run the first flow; on FlowFallback (auto only) say so in one line and run the next.

    ``unsupported`` (from fit_provider) says why no further flow is left, when none is.
    """
    for position, flow in enumerate(flows):
        following = flows[position + 1] if may_fall_back and position + 1 < len(flows) else None
        request = replace(make_request(flow), can_fall_back=following is not None)
        try:
            return flow, request, flow.run(request)
        except FlowFallback as exc:
            if following is None:
                message = exc.message
                if may_fall_back:  # auto, with no flow left that this provider can serve
                    why = f" ({'; '.join(unsupported)})" if unsupported else ""
                    message = f"{exc.message.rstrip('.')}; no other login flow can run here{why}."
                raise FlowFailed(message, hint=exc.hint) from None
            said = " ".join(filter(None, (exc.message, exc.hint)))
            notify(f"{said} Falling back to {following.title}...")
    raise AssertionError("unreachable: run_flows needs at least one flow")


def flow_request(
    settings: Settings,
    metadata: Mapping[str, Any],
    flow_settings: FlowSettings,
    *,
    nonce: str,
    ui: Any,
    http: Any,
    **fields: Any,
) -> FlowRequest:
    """The request core hands a flow, for a login, a renewal or a logout: the configured
    issuer, client, scopes and audience, and the flow's own settings (from
    :func:`flow_settings`). ``fields``: the login's own (email, routing parameters...)."""
    return FlowRequest(
        issuer=settings.issuer,
        metadata=metadata,
        client_id=settings.client_id,
        scopes=settings.scopes,
        nonce=nonce,
        ui=ui,
        http=http,
        settings=flow_settings,
        audience=settings.audience,
        http_timeout=settings.http_timeout,
        **fields,
    )
