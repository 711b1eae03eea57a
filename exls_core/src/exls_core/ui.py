"""The terminal as flows and commands see it: people's messages on stderr, nothing else.

rich is imported only when a live status line or a rich renderable is actually shown, so
commands that just print a line stay fast.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

PLAIN_STATUS_EVERY = 30.0  # seconds between repeated status lines when not on a terminal


class TerminalUI:
    """Implements :class:`exls_core.plugin.UI` on stderr."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream

    @property
    def stream(self) -> IO[str]:
        return self._stream if self._stream is not None else sys.stderr

    @property
    def is_terminal(self) -> bool:
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError):
            return False

    def message(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def warning(self, text: str) -> None:
        print(f"Warning: {text}", file=self.stream, flush=True)

    def _console(self) -> Any:
        from rich.console import Console

        return Console(file=self.stream, highlight=False, soft_wrap=True)

    def print_rich(self, renderable: Any) -> None:
        if isinstance(renderable, str) and not self.is_terminal:
            self.message(renderable)
            return
        self._console().print(renderable)

    @contextmanager
    def status(self, text: str) -> Iterator[Any]:
        if self.is_terminal:
            from rich.live import Live
            from rich.text import Text

            with Live(Text(text), console=self._console(), transient=True) as live:
                yield _LiveStatus(live)
        else:
            self.message(text)
            yield _PlainStatus(self)


class _LiveStatus:
    def __init__(self, live: Any) -> None:
        self._live = live

    def update(self, text: str) -> None:
        from rich.text import Text

        self._live.update(Text(text))


class _PlainStatus:
    """Off a terminal (logs, CI) repeat the status only now and then, not every second."""

    def __init__(self, ui: TerminalUI) -> None:
        self._ui = ui
        self._last = time.monotonic()

    def update(self, text: str) -> None:
        now = time.monotonic()
        if now - self._last >= PLAIN_STATUS_EVERY:
            self._last = now
            self._ui.message(text)
