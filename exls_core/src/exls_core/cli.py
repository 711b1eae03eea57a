"""The ``exls`` command line. Subcommands are imported only when they run (start-up matters).

Messages for people go to stderr, data to stdout. Exit codes: 0 ok, 1 failure, 2 usage,
130 cancelled.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from exls_core import __version__
from exls_core.errors import EXIT_CANCELLED, ExlsError


class LazyGroup(click.Group):
    """A group whose subcommands live in modules imported on first use."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            from importlib import import_module

            module_name, _, attr = self._lazy[cmd_name].partition(":")
            command: click.Command = getattr(import_module(module_name), attr)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help without importing every command module.
        rows = [(name, LAZY_HELP.get(name, "")) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


LAZY_HELP = {
    "login": "Log in and store your tokens in the system keyring.",
    "logout": "Remove your stored tokens (and revoke them at the provider).",
    "auth": "Inspect the session and the installed login flows.",
    "status": "Show whether you are logged in, as whom, and until when.",
    "token": "Print a valid access token on stdout (refreshing it if needed).",
    "flows": "List installed login flows, their availability and priority.",
}


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from exls_core.plugin_index import flow_entries

    click.echo(f"exls {__version__}")
    entries = flow_entries()
    if not entries:
        click.echo("flow plugins: none installed")
    for entry in sorted(entries, key=lambda e: e.name):
        click.echo(f"flow {entry.name}: {entry.distribution} {entry.version}")
    ctx.exit()


@click.group(
    cls=LazyGroup,
    lazy={
        "login": "exls_core.commands.login:login",
        "logout": "exls_core.commands.session_cmds:logout",
        "auth": "exls_core.commands.auth:auth",
    },
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


def run() -> None:
    """Console-script entry point: maps exls errors and Ctrl+C to messages and exit codes."""
    try:
        # Without standalone mode click returns the exit code of ctx.exit(n) instead of exiting.
        code = main.main(prog_name="exls", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Cancelled.", err=True)
        sys.exit(EXIT_CANCELLED)
    except KeyboardInterrupt:
        click.echo("\nCancelled.", err=True)
        sys.exit(EXIT_CANCELLED)
    except ExlsError as exc:
        click.echo(f"Error: {exc.message}", err=True)
        if exc.hint:
            click.echo(exc.hint, err=True)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    run()
