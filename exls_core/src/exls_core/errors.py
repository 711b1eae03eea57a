"""Errors that reach the person running exls.

Every error carries the one line shown on stderr and the exit code. Exit codes follow the
project convention: 1 failure, 2 usage, 130 cancelled.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 130


class ExlsError(Exception):
    """A failure with a message written for people: what went wrong and what to do."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


class UsageError(ExlsError):
    """Bad input from the command line, the environment or the config file (exit 2)."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """A malformed config file or setting; the message names the file or variable and the key."""


class PluginError(ExlsError):
    """A flow or routing plugin could not be loaded or misbehaved."""
