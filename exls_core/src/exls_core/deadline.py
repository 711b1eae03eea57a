"""An overall deadline on each HTTP exchange: the request and the reading of its answer.

requests' timeout bounds each socket read, so a provider that trickles a byte a second
keeps an exchange going for days (while refresh or logout hold the session lock). Here an
exchange ends at its deadline whatever the pace: a timer shuts the connection's socket
down, the read that waits returns at once, and :class:`TooSlow` says so.

The connections exls's sessions use (:func:`mount`) report to the exchange running in their
thread (requests is synchronous: the thread that sends is the one that connects and reads).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3 import poolmanager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

DEADLINE_FACTOR = 3.0  # an exchange may take this many read timeouts in all

_current = threading.local()  # .exchange: the Exchange this thread is sending, if any


class TooSlow(requests.Timeout):
    """The exchange did not complete before its deadline (each read may have been quick)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no complete answer within {seconds:g} s")
        self.seconds = seconds


def _cut(sock: socket.socket) -> None:
    # The plain socket's shutdown, also under TLS: the TLS object stays untouched. The
    # OSError: closed already.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class Exchange:
    """One request and the reading of its answer, cut off ``seconds`` after it began."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._lock = threading.Lock()
        # The sockets as they were connected: http.client drops ``connection.sock`` when the
        # answer closes the connection (HTTP/1.0, Connection: close), the answer keeps it.
        self._watched: list[tuple[Any, socket.socket]] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.name = "exls-http-deadline"
        self._timer.daemon = True
        self._timer.start()

    def watch(self, connection: Any) -> None:
        with self._lock:
            connection.exls_exchange = self
            sock = getattr(connection, "sock", None)
            if sock is None:
                return  # not connected yet: reported again once it is
            self._watched.append((connection, sock))
            if self.expired:
                _cut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for connection, sock in self._watched:
                if connection.exls_exchange is self:  # not serving a later exchange since
                    _cut(sock)

    def finish(self) -> None:
        """Stop the timer (and wait for its thread: nothing outlives the exchange)."""
        self._timer.cancel()
        if threading.current_thread() is not self._timer:
            self._timer.join()

    def too_slow(self) -> TooSlow:
        return TooSlow(self.seconds)


class Sending:
    """``with Sending(exchange):`` the connections this thread uses report to it."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange

    def __enter__(self) -> Exchange:
        self._outer = getattr(_current, "exchange", None)
        _current.exchange = self.exchange
        return self.exchange

    def __exit__(self, *exc: object) -> None:
        _current.exchange = self._outer


def deadline_for(timeout: Any) -> float | None:
    """The whole exchange's bound for requests' ``timeout`` (a number or (connect, read))."""
    parts = timeout if isinstance(timeout, tuple) else (timeout,)
    numbers = [part for part in parts if isinstance(part, int | float)]
    return DEADLINE_FACTOR * max(numbers) if numbers else None


class _Watched:
    """Mixed into urllib3's connections: each reports to the exchange of its thread."""

    exls_exchange: Exchange | None = None

    def _report(self) -> None:
        exchange = getattr(_current, "exchange", None)
        if exchange is not None:
            exchange.watch(self)

    def connect(self) -> None:
        self._report()
        super().connect()  # type: ignore[misc]
        self._report()  # cut at once if the deadline passed while connecting

    def request(self, *args: Any, **kwargs: Any) -> None:
        self._report()  # a kept-alive connection serves a new exchange
        super().request(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Watched, HTTPConnection):
    pass


class _HTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


def _watch_pools(manager: Any) -> Any:
    # Only urllib3's standard pools are replaced: a SOCKS proxy's manager keeps its own
    # (through SOCKS, only each read is bounded).
    if manager.pool_classes_by_scheme is poolmanager.pool_classes_by_scheme:
        manager.pool_classes_by_scheme = POOLS
    return manager


class WatchedAdapter(HTTPAdapter):
    """requests' adapter whose connections (direct or through a proxy) are watched."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _watch_pools(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        return _watch_pools(super().proxy_manager_for(proxy, **proxy_kwargs))


def mount(session: requests.Session) -> None:
    adapter = WatchedAdapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
