"""Which flow and routing plugins are installed, without importing any of them.

Entry points are found by scanning every installed distribution, which costs time that
grows with the environment. The result is cached per ``sys.path`` and keyed by the
modification times of its directories (installing or removing a distribution changes them),
so ``exls --version`` and ``exls login`` read a small JSON file instead (through
:mod:`exls_core.cache`: the index decides what gets imported, so it is private and never read
through a symlink). ``exls auth flows`` always scans afresh. ``EXLS_DISABLED_PLUGINS`` is read
here too. Only the standard library is imported here: this is on the start-up path.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from exls_core import cache

FLOW_GROUP = "exls.flows"
ROUTING_GROUP = "exls.routing"
INDEX_VERSION = 1
DISABLED_VARIABLE = "EXLS_DISABLED_PLUGINS"


@dataclass(frozen=True)
class PluginEntry:
    """One entry point, as declared by its distribution (nothing imported yet)."""

    group: str
    name: str
    value: str
    distribution: str
    version: str

    @property
    def origin(self) -> str:
        return f"{self.distribution} {self.version}"


def _scan(groups: Iterable[str]) -> list[PluginEntry]:
    from importlib.metadata import entry_points

    found: list[PluginEntry] = []
    for group in groups:
        for ep in entry_points(group=group):
            dist = ep.dist
            found.append(
                PluginEntry(
                    group=group,
                    name=ep.name,
                    value=ep.value,
                    distribution=dist.name if dist else "unknown",
                    version=dist.version if dist else "?",
                )
            )
    return found


def _index_key() -> list[tuple[str, int]]:
    key = []
    for entry in sys.path:
        try:
            key.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            continue
    return key


def installed_entries(*, fresh: bool = False) -> list[PluginEntry]:
    """Every flow and routing entry point installed in this interpreter's environment."""
    key = {"version": INDEX_VERSION, "mtimes": _index_key()}
    # One index per sys.path: environments that share a cache directory do not evict each other.
    path = cache.entry_path("plugins", sys.path)
    if not fresh and os.environ.get("EXLS_PLUGIN_INDEX", "1") != "0":
        cached = cache.load(path, key, ttl=None)
        try:
            return [PluginEntry(**item) for item in cached]
        except TypeError:  # None (a miss), or not a list of entries
            pass
    entries = _scan((FLOW_GROUP, ROUTING_GROUP))
    cache.store(path, key, [asdict(e) for e in entries])  # read-only: it only costs speed
    return entries


def flow_entries(*, fresh: bool = False) -> list[PluginEntry]:
    return [e for e in installed_entries(fresh=fresh) if e.group == FLOW_GROUP]


def disabled_names(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """``EXLS_DISABLED_PLUGINS=name,...``: entry-point names or distribution names."""
    value = (os.environ if environ is None else environ).get(DISABLED_VARIABLE, "")
    return frozenset(name.strip() for name in value.split(",") if name.strip())


def is_disabled(entry: PluginEntry, disabled: frozenset[str]) -> bool:
    return entry.name in disabled or entry.distribution in disabled


def require_installed(
    flow_id: str, installed_ids: Iterable[str], disabled_ids: Iterable[str] = ()
) -> None:
    """Usage error (exit 2) for a flow that is not installed or is switched off, before
    anything is asked."""
    from exls_core.errors import UsageError

    installed, disabled = set(installed_ids), set(disabled_ids)
    ids = sorted(installed | disabled)
    if flow_id == "auto":
        return
    if flow_id not in ids:
        raise UsageError(
            f"flow '{flow_id}' is not installed; installed flows: {', '.join(ids) or 'none'}",
            hint="Choose one with --auth-flow (or auto), or install the plugin that provides it.",
        )
    if flow_id in disabled and flow_id not in installed:
        raise UsageError(disabled_message(flow_id))


def split_disabled(entries: Iterable[PluginEntry]) -> tuple[list[PluginEntry], list[PluginEntry]]:
    """The entries to load, and those ``EXLS_DISABLED_PLUGINS`` switches off."""
    disabled = disabled_names()
    enabled: list[PluginEntry] = []
    off: list[PluginEntry] = []
    for entry in entries:
        (off if is_disabled(entry, disabled) else enabled).append(entry)
    return enabled, off


def disabled_message(flow_id: str) -> str:
    return (
        f"flow '{flow_id}' is disabled by {DISABLED_VARIABLE}; "
        "remove it from that variable to use it."
    )
