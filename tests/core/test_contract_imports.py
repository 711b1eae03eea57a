"""Plugins use the contract module only: from exls_core they import exls_core.plugin, nothing else.

The built-in flows and the example plugin are what third-party authors copy; if they reached
into core internals, so would everyone else, and core could never change them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_SOURCES = [
    ROOT / "exls_flows_pkce" / "src",
    ROOT / "exls_flows_device" / "src",
    ROOT / "exls_flows_workload" / "src",
    ROOT / "examples",
]
CONTRACT = "exls_core.plugin"


def core_imports(source: str) -> list[str]:
    """Every exls_core module a source file imports, at any depth (lazy imports included)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "exls_core":  # from exls_core import http
                names = [f"exls_core.{alias.name}" for alias in node.names]
        else:
            continue
        found += [n for n in names if n == "exls_core" or n.startswith("exls_core.")]
    return found


def plugin_files() -> list[Path]:
    return sorted(p for root in PLUGIN_SOURCES for p in root.rglob("*.py"))


def test_there_are_plugin_files_to_check() -> None:
    names = {p.parent.name for p in plugin_files()}
    assert {
        "exls_flows_pkce",
        "exls_flows_device",
        "exls_flows_workload",
        "exls_flow_example",
    } <= names


@pytest.mark.parametrize("path", plugin_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_import_only_the_contract(path: Path) -> None:
    imports = core_imports(path.read_text(encoding="utf-8"))
    assert [name for name in imports if name != CONTRACT] == []


@pytest.mark.parametrize(
    "source",
    [
        "from exls_core.http import new_session",
        "def f():\n    from exls_core.errors import ExlsError",
        "import exls_core.config",
        "from exls_core import http",
    ],
)
def test_the_check_would_notice_a_reach_into_core(source: str) -> None:
    assert [name for name in core_imports(source) if name != CONTRACT] != []
