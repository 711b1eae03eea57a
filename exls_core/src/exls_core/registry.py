"""Loading and calling flow and routing plugins (finding them is :mod:`exls_core.entry_points`).

Loading is tolerant, like httpie's: a plugin that fails to import or misbehaves is reported
as broken and skipped with a one-line warning, unless EXLS_STRICT_PLUGINS=1.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy

from exls_core import plugin as contract
from exls_core.entry_points import PluginEntry, installed_entries, split_disabled
from exls_core.errors import ExlsError, PluginError

__all__ = ["PluginEntry", "Registry", "installed_entries", "load_registry"]


@dataclass(frozen=True)
class BrokenPlugin:
    entry: PluginEntry
    error: str

    @property
    def warning(self) -> str:
        kind = "routing" if self.entry.group == contract.ROUTING_GROUP else "flow"
        return (
            f"skipping {kind} plugin '{self.entry.name}' from {self.entry.origin}: {self.error} "
            f"(fix or remove it: pip uninstall {self.entry.distribution})"
        )


def strict_plugins(environ: Mapping[str, str] | None = None) -> bool:
    value = (environ if environ is not None else os.environ).get("EXLS_STRICT_PLUGINS", "")
    return value.strip().lower() in {"1", "true", "yes", "on"}


# --- loading --------------------------------------------------------------------------------


def _load_object(value: str) -> object:
    from importlib import import_module

    module_name, _, attr = value.partition(":")
    obj: object = import_module(module_name.strip())
    for part in filter(None, attr.strip().split(".")):
        obj = getattr(obj, part)
    return obj


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Flow:
    """A typed handle on one loaded flow plugin; the rest of core never calls ``pm.hook``."""

    def __init__(self, entry: PluginEntry, pm: pluggy.PluginManager, plugin: object) -> None:
        self.entry = entry
        self.id = entry.name
        self._pm = pm
        self._plugin = plugin

    def _call(self, hook: str, **kwargs: Any) -> Any:
        others = [p for p in self._pm.get_plugins() if p is not self._plugin]
        return self._pm.subset_hook_caller(hook, remove_plugins=others)(**kwargs)

    @property
    def title(self) -> str:
        title = self._call("exls_flow_title")
        return title if isinstance(title, str) and title else f"{self.id} flow"

    def priority(self, env: contract.FlowEnvironment) -> contract.FlowAvailable:
        """The flow's priority and why it can run (a bare number has no reason); raises
        FlowUnavailable, or PluginError when the plugin is broken."""
        try:
            result = self._call("exls_flow_priority", env=env)
        except contract.FlowUnavailable:
            raise
        except Exception as exc:
            raise PluginError(f"its availability check raised {_describe(exc)}") from exc
        if result is None:
            raise PluginError("it does not implement exls_flow_priority")
        reason: object = None
        if isinstance(result, contract.FlowAvailable):
            reason = result.reason
            result = result.priority
        if reason is not None and not isinstance(reason, str):
            raise PluginError("exls_flow_priority returned a FlowAvailable whose reason is no str")
        if isinstance(result, bool) or not isinstance(result, (int, float)):
            raise PluginError(f"exls_flow_priority returned {type(result).__name__}, not a number")
        return contract.FlowAvailable(float(result), reason or None)

    def unsupported(self, metadata: Mapping[str, Any]) -> str | None:
        """Why this identity provider cannot serve the flow (its exls_flow_supported), or None."""
        try:
            self._call("exls_flow_supported", metadata=metadata)
        except contract.FlowUnavailable as exc:
            return str(exc) or "the identity provider does not support it"
        except Exception as exc:
            raise PluginError(
                f"flow '{self.id}' ({self.entry.origin}): exls_flow_supported raised "
                f"{_describe(exc)}"
            ) from exc
        return None

    def implements(self, hook: str) -> bool:
        return any(
            impl.plugin is self._plugin for impl in getattr(self._pm.hook, hook).get_hookimpls()
        )

    @property
    def needs_person(self) -> bool:
        """False for a flow that signs in a workload (exls_flow_needs_person)."""
        try:
            answer = self._call("exls_flow_needs_person")
        except Exception as exc:
            raise PluginError(
                f"flow '{self.id}' ({self.entry.origin}): exls_flow_needs_person raised "
                f"{_describe(exc)}"
            ) from exc
        return answer is not False

    def renew(self, request: contract.FlowRequest) -> contract.TokenResponse:
        """A fresh token response without a refresh token (exls_flow_renew)."""
        return self._checked("exls_flow_renew", request=request)

    def revoke(self, request: contract.FlowRequest, access_token: str) -> bool:
        """exls_flow_revoke: True revoked, False nothing to revoke; FlowFailed on refusal."""
        try:
            answer = self._call("exls_flow_revoke", request=request, access_token=access_token)
        except ExlsError:
            raise
        except Exception as exc:
            if strict_plugins():
                raise
            raise PluginError(
                f"flow '{self.id}' ({self.entry.origin}): exls_flow_revoke raised {_describe(exc)}"
            ) from exc
        return bool(answer)

    def run(self, request: contract.FlowRequest) -> contract.TokenResponse:
        return self._checked("exls_flow_run", request=request)

    def _checked(self, hook: str, **kwargs: Any) -> contract.TokenResponse:
        try:
            result = self._call(hook, **kwargs)
        except (ExlsError, EOFError):  # FlowFailed, FlowFallback, core's errors; end of input
            raise
        except Exception as exc:
            # A bug in the plugin: one line naming it, not a traceback, unless its author
            # asked for one (Ctrl+C is a BaseException and passes through either way).
            if strict_plugins() or type(exc).__module__.partition(".")[0] == "click":
                raise
            raise PluginError(
                f"flow '{self.id}' ({self.entry.origin}) failed: {_describe(exc)}",
                hint="This is a bug in the plugin: report it to its authors, or choose "
                "another flow with --auth-flow. EXLS_STRICT_PLUGINS=1 shows the traceback.",
            ) from exc
        if not isinstance(result, contract.TokenResponse):
            raise PluginError(
                f"flow '{self.id}' ({self.entry.origin}) returned {type(result).__name__} "
                f"from {hook} instead of a TokenResponse"
            )
        return result


@dataclass
class Registry:
    """The flows and routing plugins installed here, loaded tolerantly."""

    pm: pluggy.PluginManager
    flows: dict[str, Flow]
    broken: dict[str, BrokenPlugin]
    warn: Callable[[str], None]
    disabled: dict[str, PluginEntry] = field(default_factory=dict)
    """Flows switched off by EXLS_DISABLED_PLUGINS: installed, never imported."""

    @property
    def installed_ids(self) -> list[str]:
        """Flows that are loaded or broken (not the disabled ones)."""
        return sorted(set(self.flows) | set(self.broken))

    def mark_broken(self, flow: Flow, error: str) -> None:
        """Record a plugin that misbehaved after loading (e.g. its availability check raised)."""
        broken = BrokenPlugin(flow.entry, error)
        self.flows.pop(flow.id, None)
        self.broken[flow.id] = broken
        if strict_plugins():
            raise PluginError(broken.warning.replace("skipping", "broken", 1))
        self.warn(broken.warning)

    def sso_route(self, email: str, domain: str) -> contract.SSORoute | None:
        """Ask routing plugins in turn; one that raises or answers nonsense is skipped."""
        for impl in reversed(self.pm.hook.exls_sso_route.get_hookimpls()):
            try:
                route = impl.function(email=email, domain=domain)
            except Exception as exc:
                if strict_plugins():
                    raise PluginError(
                        f"routing plugin '{impl.plugin_name}' raised {_describe(exc)}"
                    ) from exc
                self.warn(f"skipping routing plugin '{impl.plugin_name}': {_describe(exc)}")
                continue
            if route is None:
                continue
            if not isinstance(route, contract.SSORoute):
                self.warn(
                    f"skipping routing plugin '{impl.plugin_name}': it returned "
                    f"{type(route).__name__}, not an SSORoute"
                )
                continue
            return route
        return None


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(contract.PROJECT)
    pm.add_hookspecs(contract.FlowSpec)
    pm.add_hookspecs(contract.RoutingSpec)
    return pm


def load_registry(
    *,
    warn: Callable[[str], None],
    entries: list[PluginEntry] | None = None,
    extra_plugins: Mapping[str, Any] | None = None,
) -> Registry:
    """Import every installed flow and routing plugin; broken ones are reported, not fatal,
    and those EXLS_DISABLED_PLUGINS names are not imported at all.

    ``extra_plugins`` registers in-process flows by id (tests and embedding applications).
    """
    strict = strict_plugins()
    pm = new_plugin_manager()
    flows: dict[str, Flow] = {}
    broken: dict[str, BrokenPlugin] = {}

    def report(entry: PluginEntry, error: str) -> None:
        item = BrokenPlugin(entry, error)
        if entry.group == contract.FLOW_GROUP:
            broken[entry.name] = item
        if strict:
            raise PluginError(item.warning.replace("skipping", "cannot load", 1))
        warn(item.warning)

    all_entries, off = split_disabled(installed_entries() if entries is None else entries)
    disabled = {e.name: e for e in off if e.group == contract.FLOW_GROUP}
    claims: dict[str, list[PluginEntry]] = {}
    for entry in all_entries:
        if entry.group == contract.FLOW_GROUP:
            claims.setdefault(entry.name, []).append(entry)

    for flow_id, claimants in claims.items():
        if len(claimants) > 1:
            names = " and ".join(e.origin for e in claimants)
            report(
                claimants[0],
                f"flow id '{flow_id}' is claimed by both {names}; uninstall one of them",
            )

    for entry in all_entries:
        if entry.group == contract.FLOW_GROUP and len(claims[entry.name]) > 1:
            continue
        try:
            obj = _load_object(entry.value)
            pm.register(obj, name=f"{entry.group}:{entry.name}")
        except Exception as exc:  # a plugin must never take exls down
            report(entry, _describe(exc))
            continue
        if entry.group == contract.FLOW_GROUP:
            flows[entry.name] = Flow(entry, pm, obj)

    for flow_id, obj in (extra_plugins or {}).items():
        entry = PluginEntry(contract.FLOW_GROUP, flow_id, "<in-process>", "in-process", "0")
        pm.register(obj, name=f"{contract.FLOW_GROUP}:{flow_id}")
        flows[flow_id] = Flow(entry, pm, obj)

    return Registry(pm=pm, flows=flows, broken=broken, warn=warn, disabled=disabled)
