"""The fakes' HTTP server: quiet, releasable, joined, and honest about its own failures."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading

import pytest

from testkit.http_server import FakeServer, QuietHandler


class Handler(QuietHandler):
    def do_GET(self) -> None:
        if self.path == "/boom":
            raise RuntimeError("a bug in the fake")
        if self.path == "/hang":
            self.server.hung.set()  # type: ignore[attr-defined]
            released = self.hang(120)
            self.server.released.append(released)  # type: ignore[attr-defined]
        self.reply(200, b"{}")


def serve() -> FakeServer:
    server = FakeServer(Handler, name="under-test")
    server.hung = threading.Event()  # type: ignore[attr-defined]
    server.released = []  # type: ignore[attr-defined]
    return server.start()


def get(server: FakeServer, path: str) -> bytes:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("GET", path)
        return connection.getresponse().read()
    finally:
        connection.close()


def test_answers_and_joins_its_threads(capfd: pytest.CaptureFixture[str]) -> None:
    server = serve()
    assert get(server, "/") == b"{}"
    server.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("under-test")]
    assert capfd.readouterr() == ("", "")


def test_a_handler_exception_is_recorded_not_printed_and_fails_close(
    capfd: pytest.CaptureFixture[str],
) -> None:
    server = serve()
    with pytest.raises(OSError):  # the connection is closed without an answer
        get(server, "/boom")
    with pytest.raises(AssertionError, match="the fake itself failed"):
        server.close()
    assert len(server.errors) == 1 and "RuntimeError: a bug in the fake" in server.errors[0]
    assert capfd.readouterr() == ("", "")


def test_a_client_that_gives_up_is_a_disconnect_and_close_releases_the_hang(
    capfd: pytest.CaptureFixture[str],
) -> None:
    server = serve()
    with socket.create_connection(("127.0.0.1", server.port)) as client:
        client.sendall(b"GET /hang HTTP/1.0\r\n\r\n")
        assert server.hung.wait(60)  # type: ignore[attr-defined]
    server.close()  # the client is gone: the late answer fails, quietly
    assert server.released == [True]  # type: ignore[attr-defined]
    assert server.errors == [] and len(server.disconnects) == 1
    assert capfd.readouterr() == ("", "")


def test_close_cuts_an_idle_connection() -> None:
    server = serve()
    with socket.create_connection(("127.0.0.1", server.port)) as idle:
        idle.sendall(b"GET /")  # never finishes its request line
        server.close()  # returns: the handler blocked in readline is woken
        idle.settimeout(30)
        with contextlib.suppress(ConnectionResetError):  # a reset: its bytes were never read
            assert idle.recv(100) == b""
