"""The click command group of ``exls``; :mod:`exls_core.cli` is the entry point.

Subcommands are imported only when they run (start-up matters). Kept apart from the entry
point so that ``exls auth token``, the hot path of scripts, does not import click at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from exls_core import __version__
from exls_core.commands import catalog


class LazyGroup(click.Group):
    """A group whose subcommands live in modules imported on first use (see ``catalog``)."""

    def __init__(self, *args: Any, lazy: Mapping[str, catalog.Entry], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            from importlib import import_module

            module_name, _, attr = self._lazy[cmd_name].target.partition(":")
            command: click.Command = getattr(import_module(module_name), attr)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help without importing every command module.
        rows = [
            (name, entry.short_help if (entry := self._lazy.get(name)) else "")
            for name in self.list_commands(ctx)
        ]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from exls_core.entry_points import DISABLED_VARIABLE, disabled_names, flow_entries, is_disabled

    click.echo(f"exls {__version__}")
    entries = flow_entries()
    if not entries:
        click.echo("flow plugins: none installed")
    disabled = disabled_names()
    for entry in sorted(entries, key=lambda e: e.name):
        off = f" (disabled by {DISABLED_VARIABLE})" if is_disabled(entry, disabled) else ""
        click.echo(f"flow {entry.name}: {entry.distribution} {entry.version}{off}")
    ctx.exit()


@click.group(
    cls=LazyGroup,
    lazy=catalog.TOP,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and the installed flow plugins.",
)
def main() -> None:
    """exls: sign in to the exalsius platform.

    Tokens are stored in your system keyring under the service name exalsius_cli.
    """
