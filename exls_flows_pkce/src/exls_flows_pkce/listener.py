"""The loopback listener that receives the browser's redirect (RFC 8252 7.3).

It listens on 127.0.0.1 only and is bound before the browser opens. Every connection is
served in its own daemon thread, with one deadline for the whole request head and a cap on
concurrent connections, so slow or stray clients (a favicon fetch, a port scanner, another
program) can neither stall the listener nor end the login: only ``GET /callback`` carrying
this login's ``state`` does, and only the first one. An address the user pastes (the page a
browser on another machine ended on) goes through the same checks (:meth:`deliver`).
"""

from __future__ import annotations

import hmac
import secrets
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import parse_qsl, quote, urlsplit

from exls_core.plugin import plain_text
from exls_flows_pkce import pages, peers
from exls_flows_pkce.messages import authorization_error

CALLBACK_PATH = "/callback"
URL_CHARACTERS = ":/?#[]@!$&'()*+,;=%-._~"  # kept as they are in a Location
START_PATH = "/start"  # redirects this user's browser to the authorization URL (browser_url)
MAX_HEAD = 8 * 1024  # request line plus headers; a real redirect needs far less
CONNECTION_TIMEOUT = 5.0  # seconds for a client to send its whole request head
MAX_CONNECTIONS = 32
ANSWER_TIMEOUT = 15.0  # how long the browser's request waits for the code exchange
SEND_WAIT = 5.0  # how long finish() and close() wait for the deciding page to be sent
MAX_FIELDS = 100
RESPONSE_FIELDS = ("state", "code", "error", "error_description", "iss")


@dataclass(frozen=True)
class CallbackParams:
    """The authorization response parameters of a redirect (others are ignored)."""

    state: str | None = None
    code: str | None = None
    error: str | None = None
    error_description: str | None = None
    iss: str | None = None

    def __repr__(self) -> str:  # the code must never reach a log or a traceback
        code = "<hidden>" if self.code else None
        return f"CallbackParams(code={code}, error={self.error!r}, iss={self.iss!r})"


def parse_callback_query(query: str) -> CallbackParams:
    """Parse a redirect's query; ValueError when it is malformed or repeats a parameter.

    RFC 6749 3.1: response parameters must not appear more than once; empty means absent.
    """
    seen: dict[str, str] = {}
    for name, value in parse_qsl(
        query, keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS
    ):
        if name not in RESPONSE_FIELDS:
            continue
        if name in seen:
            raise ValueError(f"the parameter {name} appears more than once")
        seen[name] = value
    return CallbackParams(**{name: value or None for name, value in seen.items()})


@dataclass(frozen=True)
class Callback:
    """What the redirect delivered: an authorization code, or why the login failed."""

    code: str | None = None
    failure: str | None = None
    error: str | None = None  # the provider's OAuth error code, when it sent one
    error_description: str | None = None

    def __repr__(self) -> str:
        return "Callback(code=<hidden>)" if self.code else f"Callback(failure={self.failure!r})"


@dataclass(frozen=True)
class _Verdict:
    """How an authorization response was judged: the HTTP answer for a browser, and for a
    paste the one-line refusal (None: the response ended the wait, with a code or a failure)."""

    status: HTTPStatus
    page: str
    refusal: str | None = None
    decides: bool = False  # a browser request that decided the login: its page must go out

    @classmethod
    def refused(cls, reason: str) -> _Verdict:
        return cls(HTTPStatus.BAD_REQUEST, pages.bad_request(reason), reason)


class PortsBusy(Exception):
    """None of the configured ports could be bound on 127.0.0.1."""

    def __init__(self, ports: Sequence[int], reason: str) -> None:
        super().__init__(f"127.0.0.1 port(s) {_port_list(ports)} not free ({reason})")
        self.ports = tuple(ports)
        self.reason = reason


def _port_list(ports: Sequence[int]) -> str:
    return ", ".join("any free port" if p == 0 else str(p) for p in ports)


class _Rejected(Exception):
    def __init__(self, status: HTTPStatus) -> None:
        super().__init__(status.phrase)
        self.status = status


class CallbackListener:
    """Receives one authorization response on ``http://127.0.0.1:<port>/callback``.

    Binds in the constructor (before the browser opens); ``start()`` serves, ``wait()``
    returns the first valid response, ``finish()`` answers the browser request that carried
    the code (after the code exchange), ``close()`` stops everything. Use it in a ``with``.
    """

    def __init__(
        self,
        *,
        state: str,
        issuer: str,
        ports: Sequence[int] = (0,),
        require_iss: bool = False,
        connection_timeout: float = CONNECTION_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        max_head: int = MAX_HEAD,
        answer_timeout: float = ANSWER_TIMEOUT,
    ) -> None:
        self._state = state.encode("utf-8")
        self._issuer = issuer
        self._require_iss = require_iss
        self.connection_timeout = connection_timeout
        self.max_head = max_head
        self._answer_timeout = answer_timeout
        self._lock = threading.Lock()
        self._claimed = False
        self._held = False  # a browser request waits for finish() (not so for a paste)
        self._browser_decided = False
        self._callback: Callback | None = None
        self._arrived = threading.Event()
        self._answer = pages.see_terminal()
        self._answered = threading.Event()
        self._sent = threading.Event()
        self._thread: threading.Thread | None = None
        self._start: tuple[bytes, str] | None = None  # (token, authorization URL)
        self._server = _bind(ports or (0,), self, max_connections)
        self.port: int = self._server.server_address[1]
        self.redirect_uri = f"http://127.0.0.1:{self.port}{CALLBACK_PATH}"

    # --- the login's side ------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # also how fast close() returns
            name="exls-pkce-listener",
            daemon=True,
        )
        self._thread.start()

    def browser_url(self, url: str) -> str:
        """What to start the browser with for the authorization URL ``url``.

        Where other users can read a process's command line and the kernel says who owns a
        loopback connection (Linux), an address of this listener, ``/start?t=<token>``, that
        redirects to ``url`` only a client of this user (or root): the state, nonce and code
        challenge never appear on a command line. Elsewhere ``url`` itself.
        """
        if not peers.can_identify():
            return url
        token = secrets.token_urlsafe(16)
        self._start = (token.encode("ascii"), url)
        return f"http://127.0.0.1:{self.port}{START_PATH}?t={token}"

    def wait(self, timeout: float) -> Callback | None:
        """The first valid authorization response, or None if none came within ``timeout``."""
        return self._callback if self._arrived.wait(max(timeout, 0.0)) else None

    def finish(self, page: str, *, wait: float = SEND_WAIT) -> None:
        """Send ``page`` to the browser request that delivered the code; wait until it is sent."""
        self._answer = page
        self._answered.set()
        if self._held:
            self._sent.wait(wait)  # so the page goes out before the process exits

    def close(self) -> None:
        """Stop listening. A browser request still waiting is sent back to the terminal."""
        self._answered.set()  # unless finish() came first, the page is pages.see_terminal()
        if self._browser_decided:  # the page of the browser request that decided the login
            self._sent.wait(SEND_WAIT)  # (the failure page too) goes out before exls may exit
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> CallbackListener:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the connections' side (one thread each) -----------------------------------------

    def serve_connection(self, sock: socket.socket) -> None:
        deadline = time.monotonic() + self.connection_timeout
        try:
            request_line = _read_request_line(sock, deadline, self.max_head)
        except _Rejected as rejected:
            _respond(sock, rejected.status, pages.rejected(rejected.status.phrase))
            return
        except OSError:  # too slow (TimeoutError), or gone: drop it
            return
        start = self._start_answer(request_line, sock)
        if start is not None:
            _respond(sock, *start)
            return
        status, page, decided = self._route(request_line)
        holds_code = decided and self._callback is not None and bool(self._callback.code)
        if holds_code:  # the success page only goes out once the code exchange succeeded
            self._answered.wait(self._answer_timeout)
            status, page = HTTPStatus.OK, self._answer
        try:
            _respond(sock, status, page)
        finally:
            if decided:
                self._sent.set()

    def _start_answer(
        self, request_line: str, sock: socket.socket
    ) -> tuple[HTTPStatus, str, str | None] | None:
        """The answer to ``GET /start?t=<token>`` (see browser_url); None for other paths."""
        target = request_line.split(" ")[1] if request_line.count(" ") == 2 else ""
        path, _, query = target.partition("?")
        if path != START_PATH:
            return None
        token = dict(parse_qsl(query)).get("t", "").encode("utf-8")
        if self._start is None or not hmac.compare_digest(token, self._start[0]):
            return HTTPStatus.NOT_FOUND, pages.not_found(), None
        if not peers.is_this_user(sock):
            return HTTPStatus.FORBIDDEN, pages.rejected("Not your sign-in"), None
        return HTTPStatus.SEE_OTHER, pages.redirecting(), self._start[1]

    def _route(self, request_line: str) -> tuple[HTTPStatus, str, bool]:
        """(status, page, whether this request is the one that decided the login)."""
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return HTTPStatus.BAD_REQUEST, pages.bad_request("This is not an HTTP request."), False
        method, target, _version = parts
        path, _, query = target.partition("?")
        if path != CALLBACK_PATH:
            return HTTPStatus.NOT_FOUND, pages.not_found(), False
        if method != "GET":
            return HTTPStatus.METHOD_NOT_ALLOWED, pages.rejected("Method not allowed"), False
        verdict = self._judge(query, via_browser=True)
        return verdict.status, verdict.page, verdict.decides

    def deliver(self, address: str) -> str | None:
        """Check an address the user pasted (the page the browser ended on) exactly like a
        redirect. None when it ended the wait (``wait()`` returns it), else why it was
        refused, in one line: it names no part of the address, which may hold a code."""
        text = address.strip()
        if len(text) > self.max_head:
            return "That address is far too long to be this login's."
        foreign = f"That is not this login's address; it starts with {self.redirect_uri}?"
        try:  # "http://[..." or a port that is no number: urllib raises ValueError
            parts = urlsplit(text if "://" in text else f"http://{text}")
            port = parts.port
        except ValueError:
            return foreign
        if (parts.scheme, parts.hostname, port, parts.path) != (
            "http",
            "127.0.0.1",
            self.port,
            CALLBACK_PATH,
        ):
            return foreign
        return self._judge(parts.query, via_browser=False).refusal

    def _judge(self, query: str, *, via_browser: bool) -> _Verdict:
        """The checks every authorization response passes, redirected or pasted: well-formed,
        this login's state, a code or an error, the first one only, then iss and error."""
        try:
            params = parse_callback_query(query)
        except ValueError:
            return _Verdict.refused("The response is malformed.")
        if not params.state or not hmac.compare_digest(params.state.encode("utf-8"), self._state):
            return _Verdict.refused("It does not belong to the login in progress (state mismatch).")
        if not params.code and not params.error:
            return _Verdict.refused("It carries neither an authorization code nor an error.")
        with self._lock:
            if self._claimed:  # a reload or a repeat: the first response decided
                refusal = "This login has already received its response."
                return _Verdict(HTTPStatus.OK, pages.already_handled(), refusal)
            self._claimed = True
        failure = self._check_issuer(params.iss)
        if failure is None and params.error:
            failure = authorization_error(params.error, params.error_description)
        self._callback = (
            Callback(
                failure=failure, error=params.error, error_description=params.error_description
            )
            if failure
            else Callback(code=params.code)
        )
        self._held = via_browser and not failure  # finish() answers that browser request
        self._browser_decided = via_browser  # close() lets its page (failure too) go out
        self._arrived.set()
        if failure:
            return _Verdict(HTTPStatus.OK, pages.failure(failure), decides=via_browser)
        return _Verdict(HTTPStatus.OK, "", decides=via_browser)

    def _check_issuer(self, iss: str | None) -> str | None:
        """RFC 9207: a response from another issuer is a mix-up attack; refuse it."""
        if iss is None and not self._require_iss:
            return None
        if iss is None:
            return (
                "The authorization response has no iss parameter although the identity "
                "provider advertises it (mix-up defence, RFC 9207); refusing it."
            )
        if iss != self._issuer:
            return (
                f"The authorization response came from issuer {plain_text(iss, 100)!r}, not "
                f"{self._issuer!r} (mix-up defence, RFC 9207); refusing it."
            )
        return None


# --- the socket server ------------------------------------------------------------------


def _bind(ports: Sequence[int], listener: CallbackListener, max_connections: int) -> _Server:
    """The first port of ``ports`` that binds on 127.0.0.1 (0: any free port)."""
    reason = "no port given"
    for port in ports:
        try:
            return _Server(("127.0.0.1", port), listener, max_connections)
        except OSError as exc:  # in use, or not allowed: try the next one
            reason = exc.strerror or type(exc).__name__
    raise PortsBusy(ports, reason)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True  # a stuck connection never keeps exls alive
    # POSIX: only lets us reuse a port in TIME_WAIT. On Windows it would allow two listeners
    # on one port, so there we ask for exclusive use instead (server_bind).
    allow_reuse_address = sys.platform != "win32"
    request_queue_size = 64  # a burst of connections waits for a slot instead of a SYN retry

    def __init__(
        self, address: tuple[str, int], listener: CallbackListener, max_connections: int
    ) -> None:
        self.listener = listener
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        exclusive = getattr(socket, "SO_EXCLUSIVEADDRUSE", None)
        if exclusive is not None:
            self.socket.setsockopt(socket.SOL_SOCKET, exclusive, 1)
        super().server_bind()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # over the cap: drop the connection
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that misbehaves is not worth a traceback on the user's terminal


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        cast(_Server, self.server).listener.serve_connection(self.request)


def _read_request_line(sock: socket.socket, deadline: float, limit: int) -> str:
    """Read the request head (within ``limit`` bytes and the deadline); return its first line."""
    data = b""
    while True:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            end = data.find(b"\n\n")
        if 0 <= end <= limit:
            break
        if end > limit or len(data) > limit:
            first_line_end = data.find(b"\n")
            too_long_line = first_line_end < 0 or first_line_end > limit
            raise _Rejected(
                HTTPStatus.REQUEST_URI_TOO_LONG
                if too_long_line
                else HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("the client closed the connection")
        data += chunk
    line = data.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        return line.decode("ascii")
    except UnicodeDecodeError:
        raise _Rejected(HTTPStatus.BAD_REQUEST) from None


def _respond(
    sock: socket.socket, status: HTTPStatus, page: str, location: str | None = None
) -> None:
    """Send one complete response and close gracefully (Connection: close)."""
    body = page.encode("utf-8")
    headers = [
        f"HTTP/1.1 {status.value} {status.phrase}",
        "Content-Type: text/html; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in pages.SECURITY_HEADERS),
    ]
    if status == HTTPStatus.METHOD_NOT_ALLOWED:
        headers.append("Allow: GET")
    if location is not None:  # percent-encoded beyond ASCII: a header is ASCII
        headers.append(f"Location: {quote(location, safe=URL_CHARACTERS)}")
    try:
        sock.settimeout(2.0)
        sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode("ascii") + body)
        sock.shutdown(socket.SHUT_WR)
        # Read what the client still sends (briefly, boundedly): closing with unread data
        # would reset the connection and could destroy the response before it is read.
        drain_until = time.monotonic() + 0.5
        for _ in range(16):
            remaining = drain_until - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            if not sock.recv(4096):
                break
    except OSError:
        pass
