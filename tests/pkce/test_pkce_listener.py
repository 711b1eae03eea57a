"""The callback listener, over real loopback sockets, against stray and hostile clients.

Every test ends the same way: the real redirect still completes the login, a forged one never.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from pkce_fakes import ISSUER, Reply, callback_target, get, parse_reply, read_all, send_raw

from exls_flows_pkce import pages
from exls_flows_pkce.listener import Callback, CallbackListener, PortsBusy

STATE = "s" * 43


@pytest.fixture
def listener() -> Iterator[CallbackListener]:
    with CallbackListener(state=STATE, issuer=ISSUER, connection_timeout=1.0) as server:
        yield server


@contextmanager
def flow_answers(server: CallbackListener, page: str) -> Iterator[None]:
    """Play the flow's part while the block runs: once the code arrives, answer with ``page``."""

    block_over = threading.Event()

    def run() -> None:  # until the code arrives, or the block is over without it
        while not block_over.is_set():
            if server.wait(0.05) is not None:
                server.finish(page)
                return

    thread = threading.Thread(target=run, name="flow-player")
    thread.start()
    try:
        yield
    finally:
        block_over.set()
        thread.join()


def redirect(server: CallbackListener, **params: str) -> Reply:
    return get(server.port, callback_target(**params))


def assert_completes(server: CallbackListener, code: str = "real-code") -> None:
    """The real redirect completes the login and gets the success page."""
    with flow_answers(server, pages.success()):
        reply = redirect(server, code=code, state=STATE)
    assert reply.status == 200 and "You are signed in" in reply.body
    assert server.wait(0) == Callback(code=code)


def assert_still_waiting(server: CallbackListener) -> None:
    assert server.wait(0) is None


def test_binds_127_0_0_1_only(listener: CallbackListener) -> None:
    assert listener.redirect_uri == f"http://127.0.0.1:{listener.port}/callback"
    # Bound to 0.0.0.0 it would answer here too (all of 127/8 is this machine on Linux).
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", listener.port), timeout=2).close()


def test_the_real_redirect_completes_and_the_page_waits_for_the_exchange(
    listener: CallbackListener,
) -> None:
    with socket.create_connection(("127.0.0.1", listener.port), timeout=60) as browser:
        target = callback_target(code="real-code", state=STATE)
        browser.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        assert listener.wait(60) == Callback(code="real-code")
        readable, _, _ = select.select([browser], [], [], 0.3)
        assert not readable  # the page goes out only after finish(), not when the code came
        listener.finish(pages.success())
        reply = parse_reply(read_all(browser, timeout=60))
    assert reply.status == 200 and "You are signed in" in reply.body
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in reply.headers["content-security-policy"]
    assert reply.headers["cache-control"] == "no-store"
    assert reply.headers["referrer-policy"] == "no-referrer"
    assert listener.wait(0) == Callback(code="real-code")


def test_a_failed_exchange_shows_the_failure_page(listener: CallbackListener) -> None:
    failure = pages.failure("The identity provider refused the login: invalid_grant.")
    with flow_answers(listener, failure):
        reply = redirect(listener, code="real-code", state=STATE)
    assert reply.status == 200 and "Sign-in failed" in reply.body and "invalid_grant" in reply.body


@pytest.mark.parametrize(
    "target", ["/", "/favicon.ico", "/callback/", "/CALLBACK", "/callbackx?state=" + STATE, "*"]
)
def test_other_paths_get_404_and_the_login_keeps_waiting(
    listener: CallbackListener, target: str
) -> None:
    assert get(listener.port, target).status == 404
    assert_still_waiting(listener)
    assert_completes(listener)


@pytest.mark.parametrize(
    "params",
    [
        {"code": "forged"},
        {"code": "forged", "state": ""},
        {"code": "forged", "state": "s" * 42},
        {"code": "forged", "state": STATE + "x"},
        {"code": "forged", "state": "é" * 43},
        {"error": "access_denied", "state": "wrong"},
        {"state": STATE},  # neither code nor error
    ],
)
def test_a_missing_or_wrong_state_gets_400_and_cannot_end_the_login(
    listener: CallbackListener, params: dict[str, str]
) -> None:
    reply = redirect(listener, **params)
    assert reply.status == 400 and "Not a valid sign-in response" in reply.body
    assert_still_waiting(listener)
    assert_completes(listener)


def test_a_repeated_state_parameter_is_refused(listener: CallbackListener) -> None:
    reply = get(listener.port, f"/callback?code=forged&state={STATE}&state={STATE}")
    assert reply.status == 400
    assert_still_waiting(listener)
    assert_completes(listener)


@pytest.mark.parametrize("method", ["POST", "HEAD", "PUT", "OPTIONS"])
def test_only_get_is_allowed(listener: CallbackListener, method: str) -> None:
    reply = send_raw(
        listener.port,
        f"{method} {callback_target(code='c', state=STATE)} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    )
    assert reply.status == 405 and reply.headers["allow"] == "GET"
    assert_completes(listener)


@pytest.mark.parametrize(
    "data",
    [
        b"\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /callback HTTP/2.0\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET /callback?state=\xff HTTP/1.1\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) + b"\r\n\r\n",
    ],
)
def test_junk_is_answered_400_or_dropped(listener: CallbackListener, data: bytes) -> None:
    assert send_raw(listener.port, data).status in (400, None)
    assert_completes(listener)


def test_a_provider_error_ends_the_login_escaped_in_the_page_plain_for_the_terminal(
    listener: CallbackListener,
) -> None:
    reply = redirect(
        listener,
        error="server_error",
        error_description="<script>alert(1)</script>\x1b[31m red",
        state=STATE,
    )
    assert reply.status == 200 and "Sign-in failed" in reply.body
    assert "<script>" not in reply.body and "&lt;script&gt;alert(1)&lt;/script&gt;" in reply.body
    callback = listener.wait(0)
    assert callback is not None and callback.code is None
    assert callback.failure == (
        "The identity provider could not log you in: server_error: "
        "<script>alert(1)</script> [31m red."
    )


def test_access_denied_says_so(listener: CallbackListener) -> None:
    redirect(listener, error="access_denied", error_description="User cancelled.", state=STATE)
    assert listener.wait(0) == Callback(
        failure="Login was denied in the browser (User cancelled).",
        error="access_denied",
        error_description="User cancelled.",
    )


def test_repeated_callbacks_after_completion_are_ignored(listener: CallbackListener) -> None:
    assert_completes(listener, code="first")
    for params in ({"code": "second", "state": STATE}, {"error": "access_denied", "state": STATE}):
        reply = redirect(listener, **params)
        assert reply.status == 200 and "already been handled" in reply.body
    assert get(listener.port, callback_target(code="x", state="forged")).status == 400
    assert listener.wait(0) == Callback(code="first")


def test_oversized_request_line_gets_414_and_is_dropped(listener: CallbackListener) -> None:
    reply = get(listener.port, callback_target(code="c" * 9000, state=STATE))
    assert reply.status == 414
    assert_still_waiting(listener)
    assert_completes(listener)


def test_oversized_headers_get_431_and_are_dropped(listener: CallbackListener) -> None:
    reply = get(
        listener.port, callback_target(code="c", state=STATE), headers={"Cookie": "x" * 9000}
    )
    assert reply.status == 431
    assert_still_waiting(listener)
    assert_completes(listener)


def test_many_small_headers_adding_up_are_dropped_too(listener: CallbackListener) -> None:
    headers = {f"X-H{i}": "y" * 100 for i in range(100)}
    assert get(listener.port, "/callback", headers=headers).status == 431
    assert_completes(listener)


SLOW_DEADLINE = 8.0  # per-connection deadline where a test needs connections to stay a while


def test_a_slow_client_neither_stalls_the_listener_nor_survives_its_deadline() -> None:
    with CallbackListener(state=STATE, issuer=ISSUER, connection_timeout=SLOW_DEADLINE) as server:
        started = time.monotonic()
        slow = socket.create_connection(("127.0.0.1", server.port))
        stop = threading.Event()

        def trickle() -> None:  # a byte at a time, never finishing the request head
            try:
                for byte in b"GET /callback?state=" + STATE.encode():
                    slow.sendall(bytes([byte]))
                    if stop.wait(0.1):
                        return
            except OSError:
                pass

        sender = threading.Thread(target=trickle, name="slow-client")
        sender.start()
        try:
            assert_completes(server)  # served while the slow client is still sending:
            assert not closed_by_peer(slow)  # it was not dropped first
            assert read_all(slow, timeout=SLOW_DEADLINE + 60) == b""  # then dropped, unanswered
            # ... at its deadline, not before (a generous bound above: the machine may be busy)
            assert SLOW_DEADLINE <= time.monotonic() - started < SLOW_DEADLINE + 30
        finally:
            stop.set()
            slow.close()
            sender.join()


def closed_by_peer(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""


def test_many_parallel_stray_connections_do_not_prevent_the_real_redirect(
    listener: CallbackListener,
) -> None:
    targets = ["/favicon.ico", "/", callback_target(code="x", state="forged")] * 8
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        strays = list(pool.map(lambda t: get(listener.port, t).status, targets))
        assert_completes(listener)
    assert set(strays) == {400, 404}
    assert listener.wait(0) == Callback(code="real-code")


def test_connections_over_the_cap_are_dropped_until_slots_free_up() -> None:
    with CallbackListener(
        state=STATE, issuer=ISSUER, connection_timeout=SLOW_DEADLINE, max_connections=3
    ) as server:
        started = time.monotonic()
        # Accepted in the order they connect: the three take the slots, the fourth has none.
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
        extra = socket.create_connection(("127.0.0.1", server.port))
        assert read_all(extra, timeout=SLOW_DEADLINE + 60) == b""
        assert not any(closed_by_peer(sock) for sock in idle)  # dropped at once: no waiting
        assert all(read_all(sock, timeout=SLOW_DEADLINE + 60) == b"" for sock in idle)
        assert time.monotonic() - started >= SLOW_DEADLINE  # ... the idle ones at their deadline
        assert_completes(server)
        for sock in [*idle, extra]:
            sock.close()


@pytest.mark.parametrize(
    ("iss", "require", "failure"),
    [
        (ISSUER, False, None),
        (ISSUER, True, None),
        (None, False, None),
        ("https://evil.test", False, "mix-up defence"),
        ("https://evil.test", True, "mix-up defence"),
        (ISSUER + "/", False, "mix-up defence"),
        (None, True, "has no iss parameter"),
    ],
)
def test_iss_must_be_the_issuer(iss: str | None, require: bool, failure: str | None) -> None:
    with CallbackListener(state=STATE, issuer=ISSUER, require_iss=require) as server:
        params = {"code": "real-code", "state": STATE} | ({"iss": iss} if iss else {})
        with flow_answers(server, pages.success()):
            reply = redirect(server, **params)
        callback = server.wait(0)
        assert callback is not None
        if failure is None:
            assert callback == Callback(code="real-code") and "You are signed in" in reply.body
        else:
            assert callback.code is None and failure in (callback.failure or "")
            assert "Sign-in failed" in reply.body


def test_close_answers_a_waiting_browser_and_frees_the_port() -> None:
    server = CallbackListener(state=STATE, issuer=ISSUER)
    server.start()
    replies: list[Reply] = []
    thread = threading.Thread(
        target=lambda: replies.append(redirect(server, code="c", state=STATE)), name="browser"
    )
    thread.start()
    assert server.wait(60.0) is not None
    server.close()  # e.g. Ctrl+C during the code exchange
    thread.join()
    assert replies and "Return to the terminal" in replies[0].body
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1.0)


def test_the_first_free_port_is_used() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with socket.socket() as probe:  # find a port that is free right now
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        with CallbackListener(state=STATE, issuer=ISSUER, ports=(busy, free)) as server:
            assert server.port == free
            assert_completes(server)


def test_all_ports_busy_names_them() -> None:
    with socket.socket() as first, socket.socket() as second:
        for sock in (first, second):
            sock.bind(("127.0.0.1", 0))
            sock.listen()
        ports = (first.getsockname()[1], second.getsockname()[1])
        with pytest.raises(PortsBusy) as info:
            CallbackListener(state=STATE, issuer=ISSUER, ports=ports)
    assert info.value.ports == ports
    assert f"{ports[0]}, {ports[1]}" in str(info.value)


def test_secrets_stay_out_of_reprs() -> None:
    text = repr(Callback(code="the-code")) + repr(Callback(failure="nope"))
    assert "the-code" not in text and "nope" in text
