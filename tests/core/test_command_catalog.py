"""The one-line help of lazy commands has one source, the catalog, and it matches each command.

``exls --help`` lists commands from the catalog without importing them; each command passes
the same text as ``short_help``, and it must be the first line of its docstring too, or the
listing and ``exls <command> --help`` would tell two stories.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import import_module

import click
import pytest
from cli_kit import exls

from exls_core.cli_app import main
from exls_core.commands import catalog

ENTRIES = [
    (group, name, entry) for group, table in catalog.GROUPS.items() for name, entry in table.items()
]


def command_of(entry: catalog.Entry) -> click.Command:
    module, _, attribute = entry.target.partition(":")
    command: click.Command = getattr(import_module(module), attribute)
    return command


@pytest.mark.parametrize(("group", "name", "entry"), ENTRIES, ids=lambda v: str(v)[:30])
def test_the_catalog_is_the_command_short_help_and_its_docstring(
    group: str, name: str, entry: catalog.Entry
) -> None:
    command = command_of(entry)
    assert command.name == name
    assert command.short_help == entry.short_help
    assert command.help is not None
    assert command.help.splitlines()[0] == entry.short_help


def test_the_groups_list_exactly_the_catalog() -> None:
    with click.Context(main) as ctx:
        assert main.list_commands(ctx) == sorted(catalog.TOP)
        auth = main.get_command(ctx, "auth")
        assert isinstance(auth, click.Group)
        assert auth.list_commands(ctx) == sorted(catalog.AUTH)


@pytest.mark.parametrize("group", list(catalog.GROUPS))
def test_help_shows_the_catalog_text(group: str) -> None:
    result = exls(*group.split()[1:], "--help")
    assert result.returncode == 0
    shown = " ".join(result.stdout.split())  # the listing may wrap long lines
    for name, entry in catalog.GROUPS[group].items():
        assert f"{name} {entry.short_help}" in shown


def test_the_catalog_imports_only_the_standard_library() -> None:
    probe = "import json, sys, exls_core.commands.catalog; print(json.dumps(sorted(sys.modules)))"
    loaded = set(
        json.loads(
            subprocess.run(
                [sys.executable, "-c", probe],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout
        )
    )
    assert not {m.split(".")[0] for m in loaded} & {"click", "pluggy", "requests", "rich"}
