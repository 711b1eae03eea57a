"""The one HTTP server every fake in the suite runs on: quiet, releasable, joined at close.

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            self.reply(200, b"{}")

    with FakeServer(Handler) as server:      # 127.0.0.1, an ephemeral port
        requests.get(server.url + "/x")
    # here every handler thread has ended; server.errors holds what handlers raised

Why it exists: a fake on the standard ThreadingHTTPServer prints handler tracebacks (a client
that gave up, BrokenPipeError) to stderr from a daemon thread, seconds later, into whichever
test is running then; and its handler threads outlive the test. This one never prints: an
exception in a handler is recorded (``errors``: a bug of the fake, which ``close()`` turns
into a failure; ``disconnects``: the client went away, which is expected when a test makes it
give up). A handler that must hang waits on ``release`` (an Event set at close), never sleeps.
``close()`` stops accepting, releases the hung handlers, cuts the connections still open
(idle keep-alive ones block a handler in readline) and joins every thread it started.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

JOIN_TIMEOUT = 60.0  # only a handler stuck outside ``release`` waits this long: it is a bug
DISCONNECTS = (ConnectionError, ssl.SSLError, TimeoutError)


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing and has small helpers for replies."""

    server: FakeServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests assert on what fakes record, never on a log on stderr

    def reply(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def form(self) -> bytes:
        """The request body (Content-Length bytes)."""
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def hang(self, seconds: float | None = None) -> bool:
        """Wait until the server closes (or ``seconds``); True when released by close."""
        return self.server.release.wait(seconds)


class FakeServer(HTTPServer):
    """An HTTP(S) server on 127.0.0.1:<ephemeral> serving ``handler`` from its own threads."""

    allow_reuse_address = True
    request_queue_size = 128  # floods of connections in the adversarial tests

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        *,
        tls: ssl.SSLContext | None = None,
        name: str = "fake-http",
    ) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.tls = tls
        self.name = name
        self.release = threading.Event()
        self.errors: list[str] = []  # exceptions of handlers: bugs of the fake
        self.disconnects: list[str] = []  # the client went away (gave up, refused TLS...)
        self._lock = threading.Lock()
        self._handlers: set[threading.Thread] = set()
        self._connections: set[socket.socket] = set()
        self._serving: threading.Thread | None = None
        self._closed = False

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def base(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    # --- lifecycle

    def start(self) -> FakeServer:
        self._serving = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.02}, name=self.name
        )
        self._serving.start()
        return self

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, *, check: bool = True) -> None:
        """Stop and join everything; with ``check``, fail if a handler raised (not a disconnect)."""
        if self._closed:
            return
        self._closed = True
        self.release.set()
        if self._serving is not None:
            self.shutdown()
            self._serving.join()
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):  # wakes a handler blocked on an idle one
                    connection.shutdown(socket.SHUT_RDWR)
            handlers = list(self._handlers)
        for thread in handlers:
            thread.join(JOIN_TIMEOUT)
        stuck = [thread.name for thread in handlers if thread.is_alive()]
        self.server_close()
        assert not stuck, f"{self.name}: handler threads did not end: {stuck}"
        if check:
            assert not self.errors, f"{self.name}: the fake itself failed:\n" + "\n".join(
                self.errors
            )

    # --- one thread per connection, tracked (ThreadingMixIn's daemon threads were not)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"{self.name}-handler",
        )
        with self._lock:
            self._handlers.add(thread)
            self._connections.add(request)
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        connection: socket.socket = request
        try:
            if self.tls is not None:  # the handshake in this thread, never in the accept loop
                connection = self.tls.wrap_socket(request, server_side=True)
                with self._lock:
                    self._connections.discard(request)
                    self._connections.add(connection)
            self.finish_request(connection, client_address)
        except Exception:
            self.handle_error(connection, client_address)
        finally:
            self.shutdown_request(connection)
            with self._lock:
                self._connections.discard(connection)
                self._connections.discard(request)
                self._handlers.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Record instead of printing to stderr (the standard server prints a traceback)."""
        error = traceback.format_exc()
        with self._lock:
            if isinstance(sys.exc_info()[1], DISCONNECTS):
                self.disconnects.append(error)
            else:
                self.errors.append(error)
