"""Signing in with a browser somewhere else: print the link, then wait for the redirect or
for the address the user pastes (the ``http://127.0.0.1:PORT/callback?...`` page that fails
to load on another machine), as gcloud ``--no-browser`` and kubelogin's authcode-keyboard do.

A pasted address goes through the listener's own checks (:meth:`CallbackListener.deliver`):
one that is forged, stale or for another login is refused in one line and the prompt stays.
stdin is read with ``select`` on its descriptor, never by a thread: a thread blocked in a
read would outlive the login (and can abort the interpreter at exit holding stdin's lock).
"""

from __future__ import annotations

import math
import os
import select
import stat
import sys
from collections.abc import Callable
from typing import IO

from exls_core.plugin import FlowFallback, FlowRequest, plain_text
from exls_flows_pkce.listener import MAX_HEAD, Callback, CallbackListener

PROMPT = "Paste the address here and press Enter:"
POLL = 0.1  # seconds between looks at the listener while stdin is watched
STATUS_EVERY = 1.0
DEVICE_FLOW = "device_code"  # suggested in hints when it is installed and the provider has it


class Lines:
    """Complete lines arriving on a descriptor (a terminal or a pipe), without blocking."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.closed = False
        self._pending = b""

    def poll(self, timeout: float) -> list[str]:
        """The lines that arrived within ``timeout`` seconds; ``closed`` is set at end of input."""
        if self.closed:
            return []
        ready, _, _ = select.select([self.fd], [], [], max(timeout, 0.0))
        if not ready:
            return []
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            self.closed = True
            chunk, self._pending = self._pending + b"\n" if self._pending else b"", b""
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        if len(self._pending) > 2 * MAX_HEAD:  # no newline in sight: judge what came so far
            lines, self._pending = [*lines, self._pending], b""
        return [line.decode("utf-8", "replace").strip() for line in lines]


def typed_input(stream: IO[str] | None) -> Lines | None:
    """stdin as Lines when someone can type or write there: a terminal or a pipe that is still
    open. None for /dev/null, a file, a closed stdin, or Windows (no select on its handles)."""
    if stream is None or sys.platform == "win32":
        return None
    try:
        fd = stream.fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, ValueError, OSError):
        return None
    if not (os.isatty(fd) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return None
    return Lines(fd)


def link(url: str, terminal: bool) -> str:
    """The URL as a terminal hyperlink (OSC 8) on a terminal; the visible text is the URL.
    The provider's part of it passes plain_text first: an escape sequence in the endpoint
    could otherwise end the hyperlink early and talk to the terminal."""
    url = printable_url(url)
    return f"\x1b]8;;{url}\x1b\\{url}\x1b]8;;\x1b\\" if terminal else url


def printable_url(url: str) -> str:
    """The URL for the terminal, through core's sanitizer (the whole of it, however long)."""
    return plain_text(url, max(len(url), 1))


def wait_elsewhere(
    request: FlowRequest,
    listener: CallbackListener,
    url: str,
    *,
    why: str,
    deadline: float,
    clock: Callable[[], float],
    stdin: IO[str] | None,
) -> Callback:
    """Show the link and how to bring the browser back; the first valid response, pasted or
    redirected. FlowFallback at the deadline; KeyboardInterrupt passes through."""
    ui = request.ui
    port = listener.port
    lines = typed_input(stdin)
    early = lines.poll(0) if lines is not None else []  # a pipe already at its end: no prompt
    if lines is not None and lines.closed and not any(early):
        lines = None
    ui.message(f"{why} Open this link in a browser, on this machine or any other:")
    ui.message(link(url, ui.is_terminal))
    ui.message(
        f"After you sign in, the browser goes to {listener.redirect_uri}, which reaches exls "
        f"only from this machine. On another machine, forward port {port} first "
        f"(ssh -L {port}:127.0.0.1:{port} <this machine>)"
        + (", or copy the address of the page that fails to load." if lines else ".")
    )
    if lines is None:
        return _redirect_only(request, listener, deadline, clock)
    ui.message(f"{PROMPT} (exls waits {countdown(deadline - clock())}; Ctrl+C cancels)")
    pending = early
    while True:
        for line in filter(None, pending):
            refusal = listener.deliver(line)
            if refusal is None:
                break
            ui.message(f"Refused: {refusal} {PROMPT}")
        callback = listener.wait(0)
        if callback is not None:
            return callback
        remaining = deadline - clock()
        if remaining <= 0:
            raise _timed_out(request, listener, pasting=True)
        if lines.closed:
            ui.message("Nothing more can be pasted (end of input); waiting for the redirect.")
            return _redirect_only(request, listener, deadline, clock)
        pending = lines.poll(min(POLL, remaining))


def wait_for_redirect(
    request: FlowRequest,
    listener: CallbackListener,
    *,
    doing: str,
    deadline: float,
    clock: Callable[[], float],
    timed_out: FlowFallback,
    gave_up: Callable[[], bool] = lambda: False,
) -> Callback | None:
    """The redirect, under a live countdown ``<doing>... 1:59 left``; raise ``timed_out`` at
    the deadline; None as soon as ``gave_up()`` (a browser launcher that failed late)."""
    with request.ui.status(_waiting(doing, deadline - clock())) as status:
        while True:
            remaining = deadline - clock()
            if remaining <= 0:
                raise timed_out
            callback = listener.wait(min(STATUS_EVERY, remaining))
            if callback is not None:
                return callback
            if gave_up():
                return None
            status.update(_waiting(doing, deadline - clock()))


def _redirect_only(
    request: FlowRequest, listener: CallbackListener, deadline: float, clock: Callable[[], float]
) -> Callback:
    timed_out = _timed_out(request, listener, pasting=False)
    doing = "Waiting for the browser's redirect"
    callback = wait_for_redirect(
        request, listener, doing=doing, deadline=deadline, clock=clock, timed_out=timed_out
    )
    assert callback is not None  # it never gives up
    return callback


def _timed_out(request: FlowRequest, listener: CallbackListener, *, pasting: bool) -> FlowFallback:
    pasted = " and no address was pasted" if pasting else ""
    device = suggest_device_flow(request, ", or use --auth-flow device_code")
    return FlowFallback(
        "Browser authentication timed out.",
        hint=f"No redirect reached 127.0.0.1:{listener.port}{pasted} in time. Try again "
        f"(EXLS_AUTH_PKCE_TIMEOUT gives more time){device}.",
    )


def suggest_device_flow(request: FlowRequest, words: str) -> str:
    """``words`` for a hint, if the device code flow is installed and the provider has it."""
    return words if DEVICE_FLOW in request.other_flows else ""


def _waiting(doing: str, remaining: float) -> str:
    return f"{doing}... {countdown(remaining)} left (Ctrl+C to cancel)"


def countdown(seconds: float) -> str:
    """``2:00``: whole seconds left, rounded up."""
    minutes, rest = divmod(max(0, math.ceil(seconds)), 60)
    return f"{minutes}:{rest:02d}"
