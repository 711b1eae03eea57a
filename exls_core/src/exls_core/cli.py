"""The ``exls`` entry point. The commands are a click group (:mod:`exls_core.cli_app`), whose
subcommands are imported only when they run (start-up matters). This module imports
:mod:`exls_core.cli_app` (and click) only when a command needs it; nothing imports this one.

``exls auth token`` with nothing else on the command line is the hot path of every script
(``curl -H "Authorization: Bearer $(exls auth token)"``): it skips click and calls the
session code directly, with the same output, messages and exit codes as the click command;
on Linux it first asks the token cache in the kernel keyring (no keyring, no D-Bus), then an
exls agent, if one runs (one request on its socket).

Messages for people go to stderr, data to stdout. Exit codes: 0 ok, 1 failure, 2 usage,
130 cancelled.
"""

from __future__ import annotations

import os
import sys

from exls_core.errors import EXIT_CANCELLED, ExlsError

TYPE_CHECKING = False  # as typing's (mypy reads it so); importing typing costs auth token

if TYPE_CHECKING:
    from typing import NoReturn

COMPLETE_VAR = "_EXLS_COMPLETE"  # click's shell completion: always the click path


def is_token_fast_path(argv: list[str]) -> bool:
    """Exactly ``exls auth token``: anything else (options, --help, completion) goes to click."""
    return argv == ["auth", "token"] and COMPLETE_VAR not in os.environ


def _echo(text: str, *, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    if stream is not None:  # as click.echo: no stream (pythonw), no output
        stream.write(text + "\n")
        stream.flush()


def _fail(exc: ExlsError) -> NoReturn:
    _echo(f"Error: {exc.message}", err=True)
    if exc.hint:
        _echo(exc.hint, err=True)
    sys.exit(exc.exit_code)


def _run_token() -> NoReturn:
    """``exls auth token`` without click (see exls_core.commands.session_cmds.token)."""
    try:
        from exls_core.session.token_cache import cached_token

        token = cached_token()  # Linux: a few syscalls, before the settings are even read
        if token is None:
            from exls_core.session.agent_protocol import fast_token

            token = fast_token()  # an exls agent holding the session of these settings
        if token is None:
            from exls_core.session.refresh import get_access_token

            token = get_access_token()
        _echo(token)
    except (KeyboardInterrupt, EOFError):
        _echo("\nCancelled.", err=True)
        sys.exit(EXIT_CANCELLED)
    except ExlsError as exc:
        _fail(exc)
    except BrokenPipeError:
        _silence_stdout()
        sys.exit(1)
    sys.exit(0)


def _silence_stdout() -> None:
    # The reader went away: without this, flushing stdout at exit reports the broken pipe.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, AttributeError, ValueError):
        pass


def run() -> None:
    """Console-script entry point: maps exls errors and Ctrl+C to messages and exit codes."""
    if is_token_fast_path(sys.argv[1:]):
        _run_token()
    import click

    from exls_core.cli_app import main as group

    try:
        # Without standalone mode click returns the exit code of ctx.exit(n) instead of exiting.
        code = group.main(prog_name="exls", standalone_mode=False)
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
        _silence_stdout()
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    run()
