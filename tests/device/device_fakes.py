"""Device code flow test helpers: a clock that never waits, a recording UI, a QR reader.

Test modules import it by name: pytest puts this folder on sys.path (rootdir import mode).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


class FakeClock:
    """Monotonic time that only moves when the code under test sleeps."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.sleeps: list[float] = []
        self.interrupt_after: int | None = None  # raise KeyboardInterrupt on this sleep

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, "a zero or negative sleep would spin"
        if self.interrupt_after is not None and len(self.sleeps) >= self.interrupt_after:
            raise KeyboardInterrupt
        self.sleeps.append(seconds)
        self.now += seconds


def render_plain(renderable: Any) -> str:
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=160, color_system=None, force_terminal=False).print(renderable)
    return out.getvalue()


class FakeStatus:
    def __init__(self, ui: FakeUI) -> None:
        self._ui = ui

    def update(self, text: str) -> None:
        self._ui.updates.append(text)


class FakeUI:
    """Implements exls_core.plugin.UI and records everything a user would see."""

    def __init__(self, *, terminal: bool = False) -> None:
        self._terminal = terminal
        self.messages: list[str] = []
        self.rich: list[Any] = []
        self.updates: list[str] = []
        self.status_active = False
        self.status_closed = False

    @property
    def is_terminal(self) -> bool:
        return self._terminal

    def message(self, text: str) -> None:
        self.messages.append(text)

    def warning(self, text: str) -> None:
        self.messages.append(f"Warning: {text}")

    def print_rich(self, renderable: Any) -> None:
        self.rich.append(renderable)

    @contextmanager
    def status(self, text: str) -> Iterator[FakeStatus]:
        self.updates.append(text)
        self.status_active = True
        try:
            yield FakeStatus(self)
        finally:
            self.status_active = False
            self.status_closed = True

    @property
    def everything(self) -> str:
        """All output as one text, rich renderables rendered."""
        parts = [*self.messages, *(render_plain(r) for r in self.rich), *self.updates]
        return "\n".join(parts)


# --- QR codes: half-block text back to modules, then a real decoder ---------------------

LIGHT = {"█": (True, True), "▀": (True, False), "▄": (False, True), " ": (False, False)}
ANSI = re.compile(r"\x1b\[[0-9;]*m|\x1b\]8;[^\x1b]*\x1b\\")


def parse_half_blocks(text: str) -> list[list[bool]]:
    """The module matrix (True = dark) printed by exls_flows_device.qr.render."""
    rows: list[list[bool]] = []
    for line in text.split("\n"):
        pairs = [LIGHT[ch] for ch in line]  # KeyError: a character a QR code must not hold
        rows.append([not top for top, _ in pairs])
        rows.append([not bottom for _, bottom in pairs])
    size = len(rows[0])
    assert all(len(row) == size for row in rows), "ragged QR text"
    assert len(rows) in {size, size + 1}, "a QR code is square"
    if len(rows) == size + 1:
        assert all(rows[-1]), "the padding half-row below the code must stay blank"
    return rows[:size]


def qr_lines(output: str) -> str:
    """The QR code's lines within terminal output (ANSI codes removed)."""
    lines = [ANSI.sub("", line) for line in output.split("\n")]
    found = [line for line in lines if line and set(line) <= set(LIGHT) and set(line) - {" "}]
    assert found, "no QR code in the output"
    return "\n".join(found)


def decode(modules: list[list[bool]], scale: int = 6) -> list[str]:
    """Decode a module matrix (quiet zone included) with zxing-cpp, as a phone would.

    The matrix becomes an 8-bit grey image (black dark modules, white light ones), each
    module ``scale`` pixels wide, passed as a 2-D buffer: no imaging library needed.
    """
    zxingcpp = pytest.importorskip("zxingcpp")  # fails under CI (tests/conftest.py)
    side = len(modules) * scale
    pixels = bytes(
        0 if modules[y // scale][x // scale] else 255 for y in range(side) for x in range(side)
    )
    image = memoryview(pixels).cast("B", (side, side))
    return [result.text for result in zxingcpp.read_barcodes(image)]
