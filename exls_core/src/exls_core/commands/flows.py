"""``exls auth flows``: what is installed, what can run here, and what ``auto`` would pick."""

from __future__ import annotations

import json
from typing import Any

import click

from exls_core.commands.catalog import AUTH


def listing(rows: list[dict[str, Any]]) -> list[str]:
    """One line per flow, in columns as wide as their longest entry (a flow id may be long)."""
    origins = [f"{row['distribution']} {row['version']}" for row in rows]
    id_width = max(len(str(row["id"])) for row in rows)
    origin_width = max(len(origin) for origin in origins)
    lines = []
    for row, origin in zip(rows, origins, strict=True):
        marker = "*" if row["auto"] else " "
        head = f"{marker} {row['id']:<{id_width}}  {origin:<{origin_width}}"
        if row["status"] == "available":
            why = f": {row['reason']}" if row["reason"] else ""
            lines.append(f"{head}  available, priority {row['priority']:g}{why}")
        else:
            lines.append(f"{head}  {row['status']}: {row['reason']}")
    return lines


@click.command(short_help=AUTH["flows"].short_help)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
def flows(as_json: bool) -> None:
    """List installed login flows, their availability and priority."""
    from exls_core.config import load_settings
    from exls_core.entry_points import DISABLED_VARIABLE
    from exls_core.registry import installed_entries, load_registry
    from exls_core.resolver import current_environment, flow_settings, rank
    from exls_core.ui import TerminalUI

    ui = TerminalUI()
    warnings: list[str] = []
    registry = load_registry(warn=warnings.append, entries=installed_entries(fresh=True))
    # Each check sees the flow's settings as `exls login` hands them (config file included).
    settings_for = flow_settings(load_settings(), warn=warnings.append)
    ranked = rank(registry, current_environment(), settings_for)
    pick = next((r.flow.id for r in ranked if r.available), None)
    rows = [
        {
            "id": r.flow.id,
            "title": r.flow.title,
            "distribution": r.flow.entry.distribution,
            "version": r.flow.entry.version,
            "status": "available" if r.available else "unavailable",
            "priority": r.priority,
            "reason": r.reason,
            "auto": r.flow.id == pick,
        }
        for r in ranked
    ]
    rows += [
        {
            "id": b.entry.name,
            "title": None,
            "distribution": b.entry.distribution,
            "version": b.entry.version,
            "status": "broken",
            "priority": None,
            "reason": b.error,
            "auto": False,
        }
        for b in sorted(registry.broken.values(), key=lambda b: b.entry.name)
    ]
    rows += [
        {
            "id": entry.name,
            "title": None,
            "distribution": entry.distribution,
            "version": entry.version,
            "status": "disabled",
            "priority": None,
            "reason": f"switched off by {DISABLED_VARIABLE}",
            "auto": False,
        }
        for entry in sorted(registry.disabled.values(), key=lambda e: e.name)
    ]
    if as_json:
        click.echo(json.dumps({"auto": pick, "flows": rows}, indent=2))
        return
    for warning in warnings:
        ui.warning(warning)
    if not rows:
        click.echo("No login flows installed. Install exls-flows-device or exls-flows-pkce.")
        return
    for line in listing(rows):
        click.echo(line)
    click.echo(f"auto picks: {pick or 'nothing (no flow can run here)'}")
