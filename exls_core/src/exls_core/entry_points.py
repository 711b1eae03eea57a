"""Which flow and routing plugins are installed, without importing any of them.

Entry points are found by scanning every installed distribution, which costs time that
grows with the environment. The result is cached per ``sys.path`` and keyed by the
modification times of its directories (installing or removing a distribution changes them),
so ``exls --version`` and ``exls login`` read a small JSON file instead. ``exls auth flows``
always scans afresh. Only the standard library is imported here: this is on the start-up path.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from exls_core.paths import user_dir, write_json_quietly

FLOW_GROUP = "exls.flows"
ROUTING_GROUP = "exls.routing"
INDEX_VERSION = 1


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


def _index_path() -> str:

    # One index per sys.path: environments that share a cache directory do not evict each other.
    # (crc32, not a cryptographic hash: it only names a file whose content is checked anyway.)
    digest = zlib.crc32(json.dumps(sys.path).encode())
    return os.path.join(user_dir("cache"), f"plugins-{digest:08x}.json")


def installed_entries(*, fresh: bool = False) -> list[PluginEntry]:
    """Every flow and routing entry point installed in this interpreter's environment."""
    groups = (FLOW_GROUP, ROUTING_GROUP)
    key = _index_key()
    path = _index_path()
    if not fresh and os.environ.get("EXLS_PLUGIN_INDEX", "1") != "0":
        try:
            with open(path, encoding="utf-8") as file:
                cached = json.load(file)
            if cached.get("version") == INDEX_VERSION and cached.get("key") == [
                list(item) for item in key
            ]:
                return [PluginEntry(**item) for item in cached["entries"]]
        except (OSError, ValueError, TypeError, KeyError):
            pass
    entries = _scan(groups)
    payload = {"version": INDEX_VERSION, "key": key, "entries": [asdict(e) for e in entries]}
    write_json_quietly(path, payload)  # a read-only cache directory only costs speed
    return entries


def flow_entries(*, fresh: bool = False) -> list[PluginEntry]:
    return [e for e in installed_entries(fresh=fresh) if e.group == FLOW_GROUP]


def require_installed(flow_id: str, installed_ids: Iterable[str]) -> None:
    """Usage error (exit 2) for a flow that is not installed, before anything is asked."""
    from exls_core.errors import UsageError

    ids = sorted(installed_ids)
    if flow_id != "auto" and flow_id not in ids:
        raise UsageError(
            f"flow '{flow_id}' is not installed; installed flows: {', '.join(ids) or 'none'}",
            hint="Choose one with --auth-flow (or auto), or install the plugin that provides it.",
        )
