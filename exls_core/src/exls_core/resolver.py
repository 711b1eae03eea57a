"""Choosing and running a login flow: ``auto`` ranks the available flows, explicit never falls back.

Like keyring's backend priorities: a flow's priority check returns a number or raises with
the reason it cannot run; the highest number wins, ties go to the smaller flow id so the
choice never depends on install order.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from exls_core.errors import ExlsError, PluginError
from exls_core.plugin import (
    FlowEnvironment,
    FlowFailed,
    FlowFallback,
    FlowRequest,
    FlowUnavailable,
    TokenResponse,
)
from exls_core.plugin_index import require_installed
from exls_core.plugins import Flow, Registry

AUTO = "auto"


def current_environment() -> FlowEnvironment:
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
    )


@dataclass(frozen=True)
class Ranked:
    """One installed flow as ``auto`` sees it right now."""

    flow: Flow
    priority: float | None
    reason: str | None  # why it is unavailable

    @property
    def available(self) -> bool:
        return self.priority is not None


def rank(registry: Registry, env: FlowEnvironment) -> list[Ranked]:
    """Every loaded flow with its priority or reason, best first; broken ones are dropped."""
    ranked = []
    for flow in list(registry.flows.values()):
        try:
            ranked.append(Ranked(flow, flow.priority(env), None))
        except FlowUnavailable as exc:
            ranked.append(Ranked(flow, None, str(exc) or "not available here"))
        except PluginError as exc:
            registry.mark_broken(flow, exc.message)
    ranked.sort(key=lambda r: (r.priority is None, -(r.priority or 0.0), r.flow.id))
    return ranked


def choose(registry: Registry, requested: str, env: FlowEnvironment) -> list[Flow]:
    """The flows to try, in order: the explicit one alone, or the available ones for ``auto``."""
    if requested != AUTO:
        require_installed(requested, registry.installed_ids)
        if requested in registry.broken:
            raise PluginError(
                registry.broken[requested].warning.replace("skipping", "cannot use", 1)
            )
        return [registry.flows[requested]]  # forced: run it even if it says it is unavailable
    ranked = rank(registry, env)
    chosen = [r.flow for r in ranked if r.available]
    if not chosen:
        reasons = (
            "; ".join(f"{r.flow.id}: {r.reason}" for r in ranked) or "no flow plugin is installed"
        )
        raise ExlsError(
            f"No login flow can run here ({reasons}).",
            hint="Install a flow plugin (e.g. exls-flows-device) or choose one with --auth-flow.",
        )
    return chosen


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
        request = make_request(flow)
        try:
            return flow, request, flow.run(request)
        except FlowFallback as exc:
            following = flows[position + 1] if position + 1 < len(flows) else None
            if not may_fall_back:
                raise FlowFailed(exc.message, hint=exc.hint) from None
            if following is None:
                why = f" ({'; '.join(unsupported)})" if unsupported else ""
                message = f"{exc.message.rstrip('.')}; no other login flow can run here{why}."
                raise FlowFailed(message, hint=exc.hint) from None
            notify(f"{exc.message} Falling back to {following.title}...")
    raise AssertionError("unreachable: run_flows needs at least one flow")
