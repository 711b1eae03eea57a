"""Hostile local callers against the PKCE loopback listener while a login waits.

The catalogue (adv_raw.ATTACKS) is run twice: in-process, one attack per test against the
listener module with the real redirect afterwards; and all at once against the listener of
a real ``exls login --auth-flow pkce``, together with 200 parallel stray clients and a
client that sends a byte a second. Every attack gets a 4xx or is dropped; the real
redirect still completes the login; a forged one never does. (tests/pkce covers the
listener's own contract; this is the attack catalogue and its count.)
"""

from __future__ import annotations

import select
import socket
import threading
import time
import unicodedata
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from adv_kit import EMAIL, Result, Sandbox, finish, spawn
from adv_raw import ATTACKS, FORGED, SCRIPT, Reply, get, query, read_all, send_raw
from lying_idp import LyingIdP, Tenant

from exls_flows_pkce import pages
from exls_flows_pkce.listener import Callback, CallbackListener

pytestmark = pytest.mark.attack("listener")

STATE = "S" * 10 + "tate-of-the-login-in-progress-0123456789"  # 50 characters
ISSUER = "https://idp.adversarial.test"
# 200 clients at once queue for the listener's accept backlog; on a busy machine a connect
# may wait for the kernel's SYN retries (1 s, 3 s, ...): more than send_raw's 5 s.
FLOOD_WAIT = 60.0
CONTROL = set("".join(chr(c) for c in range(32)) + "\x7f")


@pytest.fixture
def listener() -> Iterator[CallbackListener]:
    with CallbackListener(state=STATE, issuer=ISSUER, connection_timeout=1.0) as server:
        yield server


def complete_for_real(server: CallbackListener, code: str = "real-code") -> Reply:
    """Play browser and flow: send the real redirect, 'exchange' the code, answer the page."""

    attempt_over = threading.Event()

    def flow() -> None:  # until the code arrives, or this attempt is over (it was dropped)
        while not attempt_over.is_set():
            if server.wait(0.05) is not None:
                server.finish(pages.success())
                return

    player = threading.Thread(target=flow, name="flow-player")
    player.start()
    try:
        return get(server.port, query(code=code, state=STATE, iss=ISSUER), timeout=60.0)
    finally:
        attempt_over.set()
        player.join()


def assert_refused(name: str, reply: Reply) -> None:
    assert reply.status in ATTACKS[name][1], f"{name}: answered {reply.status}"
    assert SCRIPT not in reply.body


@pytest.mark.parametrize("name", ATTACKS)
def test_the_attack_is_refused_and_the_real_redirect_still_completes(
    name: str, listener: CallbackListener
) -> None:
    build, _ = ATTACKS[name]
    assert_refused(name, send_raw(listener.port, build(listener.port, STATE)))
    assert listener.wait(0) is None  # the login is still waiting
    reply = complete_for_real(listener)
    assert (reply.status, reply.body) == (200, pages.success())
    assert listener.wait(0) == Callback(code="real-code")


SLOW_CLIENT_DEADLINE = 8.0  # the listener's per-connection deadline in the slow-client test


def test_a_client_sending_a_byte_a_second_neither_stalls_nor_ends_the_login() -> None:
    with CallbackListener(
        state=STATE, issuer=ISSUER, connection_timeout=SLOW_CLIENT_DEADLINE
    ) as server:
        slow_client_against(server)


def slow_client_against(listener: CallbackListener) -> None:
    slow = socket.create_connection(("127.0.0.1", listener.port))
    stop = threading.Event()

    def trickle() -> None:
        try:
            for byte in f"GET {query(code='forged', state=FORGED)} HTTP/1.1\r\n\r\n".encode():
                slow.sendall(bytes([byte]))
                if stop.wait(1.0):
                    return
        except OSError:
            pass

    sender = threading.Thread(target=trickle, name="slow-client")
    sender.start()
    try:
        time.sleep(0.3)  # let the slow client be accepted first (not asserted)
        reply = complete_for_real(listener)
        # At once: the slow client was still connected, not yet dropped at its deadline.
        assert not _closed_by_peer(slow), "the real redirect waited for the slow client"
        assert (reply.status, reply.body) == (200, pages.success())
        # dropped at its deadline, unanswered
        assert read_all(slow, timeout=SLOW_CLIENT_DEADLINE + 60) == b""
    finally:
        stop.set()
        slow.close()
        sender.join()
    assert listener.wait(0) == Callback(code="real-code")


def _closed_by_peer(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""


def test_two_hundred_parallel_hostile_clients_then_the_real_redirect(
    listener: CallbackListener,
) -> None:
    names = list(ATTACKS) * 5  # 200 connections, every attack five times
    assert len(names) >= 200

    def attack(name: str) -> tuple[str, Reply]:
        return name, send_raw(listener.port, ATTACKS[name][0](listener.port, STATE), FLOOD_WAIT)

    with ThreadPoolExecutor(max_workers=200) as pool:
        replies = list(pool.map(attack, names))
    for name, reply in replies:  # over the connection cap a client may also be dropped
        assert reply.status in ATTACKS[name][1] | {None}, f"{name}: {reply.status}"
    assert listener.wait(0) is None
    reply = complete_for_real(listener)
    assert (reply.status, reply.body) == (200, pages.success())


def test_two_hundred_idle_connections_then_the_real_redirect(listener: CallbackListener) -> None:
    idle = [socket.create_connection(("127.0.0.1", listener.port)) for _ in range(200)]
    try:
        time.sleep(1.2)  # past the connection deadline (1 s): the idle clients are dropped
        assert listener.wait(0) is None
        deadline = time.monotonic() + 60  # a generous bound: the machine may be loaded
        while (reply := complete_for_real(listener)).status is None:  # a browser reloads
            assert time.monotonic() < deadline, "the flood kept the real redirect out"
            time.sleep(0.2)
        assert (reply.status, reply.body) == (200, pages.success())
        assert listener.wait(0) == Callback(code="real-code")
    finally:
        for sock in idle:
            sock.close()


def test_a_replayed_redirect_after_success_changes_nothing(listener: CallbackListener) -> None:
    assert complete_for_real(listener).status == 200
    again = get(listener.port, query(code="replayed", state=STATE, iss=ISSUER))
    assert (again.status, again.body) == (200, pages.already_handled())
    assert get(listener.port, query(code="forged", state=FORGED)).status == 400
    assert listener.wait(0) == Callback(code="real-code")


def test_an_error_with_markup_ends_the_login_escaped_and_plain(listener: CallbackListener) -> None:
    description = f"{SCRIPT}\x1b[31m\u202e<img src=x onerror=alert(1)>"
    reply = get(
        listener.port, query(error="server_error", error_description=description, state=STATE)
    )
    assert reply.status == 200
    assert "<script" not in reply.body and "<img" not in reply.body
    assert "&lt;script&gt;" in reply.body
    callback = listener.wait(0)
    assert callback is not None and callback.code is None and callback.failure
    assert not CONTROL & set(callback.failure)
    assert not any(unicodedata.category(ch) == "Cf" for ch in callback.failure)


# --- the same, against the listener of a real `exls login --auth-flow pkce`


def barrage(port: int, state: str, *, parallel: bool = True) -> list[tuple[str, Reply]]:
    """Every attack once, then (``parallel``) all of them five times at once."""
    replies = [(name, send_raw(port, build(port, state))) for name, (build, _) in ATTACKS.items()]
    if not parallel:
        return replies
    names = list(ATTACKS) * 5
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        replies += list(
            pool.map(
                lambda name: (name, send_raw(port, ATTACKS[name][0](port, state), FLOOD_WAIT)),
                names,
            )
        )
    return replies


def start_login(idp: LyingIdP, root: Path, name: str, **env: str) -> dict[str, Any]:
    tenant: Tenant = idp.tenant(name, callback="manual")
    box = Sandbox(root, tenant)
    box.seed()
    before = box.keyring()
    started = time.monotonic()
    process = spawn(box, "login", "--auth-flow", "pkce", "--email", EMAIL, env=box.env(**env))
    if not tenant.authorized.wait(120):
        process.kill()
        raise AssertionError(f"the browser never reached the provider: {process.communicate()}")
    authorization = tenant.authorizations[0]
    port = int(authorization["redirect_uri"].rsplit(":", 1)[1].split("/")[0])
    return {
        "tenant": tenant,
        "box": box,
        "before": before,
        "process": process,
        "started": started,
        "state": authorization["state"],
        "port": port,
        "code": tenant.all_secrets()["code"][0],
    }


@contextmanager
def slow_client(port: int) -> Iterator[socket.socket]:
    """A client sending a byte a second, for as long as the block runs."""
    sock = socket.create_connection(("127.0.0.1", port))
    stop = threading.Event()

    def trickle() -> None:
        try:
            for byte in b"GET /callback?code=forged&state=x HTTP/1.1\r\n\r\n":
                sock.sendall(bytes([byte]))
                if stop.wait(1.0):
                    return
        except OSError:
            pass

    sender = threading.Thread(target=trickle, name="slow-client")
    sender.start()
    try:
        yield sock
    finally:
        stop.set()
        sock.close()
        sender.join()


def test_through_the_cli_the_barrage_fails_and_the_real_redirect_logs_in(
    idp: LyingIdP, tmp_path: Path
) -> None:
    login = start_login(idp, tmp_path, "cli-barrage-then-real", EXLS_AUTH_PKCE_TIMEOUT="90")
    with slow_client(login["port"]):
        for name, reply in barrage(login["port"], login["state"]):
            assert reply.status in ATTACKS[name][1] | {None}, f"{name}: {reply.status}"
            assert SCRIPT not in reply.body
        assert login["process"].poll() is None  # still waiting for the real redirect
        real = get(
            login["port"],
            query(code=login["code"], state=login["state"], iss=login["tenant"].issuer),
        )
        result: Result = finish(login["box"], login["process"], login["started"])
    assert (real.status, real.body) == (200, pages.success())
    assert result.rc == 0, result
    tenant: Tenant = login["tenant"]
    assert tenant.hits["token:authorization_code"] == 1  # only the real code was exchanged
    rc, status = login["box"].status()
    assert rc == 0 and status is not None and status["email"] == EMAIL


def test_through_the_cli_forged_redirects_never_log_in(idp: LyingIdP, tmp_path: Path) -> None:
    login = start_login(idp, tmp_path, "cli-forged-only", EXLS_AUTH_PKCE_TIMEOUT="15")
    for name, reply in barrage(login["port"], login["state"], parallel=False):
        assert reply.status in ATTACKS[name][1] | {None}, f"{name}: {reply.status}"
    for forged in ("forged-1", "forged-2"):
        assert get(login["port"], query(code=forged, state=FORGED)).status == 400
    result = finish(login["box"], login["process"], login["started"])
    assert (result.rc, result.out, result.error) == (1, "", "Browser authentication timed out."), (
        result
    )
    assert login["box"].keyring() == login["before"]
    assert login["tenant"].hits["token"] == 0


def test_through_the_cli_an_error_with_script_is_escaped_and_plain(
    idp: LyingIdP, tmp_path: Path
) -> None:
    login = start_login(idp, tmp_path, "cli-error-with-script", EXLS_AUTH_PKCE_TIMEOUT="90")
    description = f"{SCRIPT}\x1b]0;owned\x07\x1b[2J"
    reply = get(
        login["port"],
        query(error="temporarily_unavailable", error_description=description, state=login["state"]),
    )
    result = finish(login["box"], login["process"], login["started"])
    assert reply.status == 200 and "<script" not in reply.body and "&lt;script&gt;" in reply.body
    assert result.rc == 1 and result.out == "", result
    assert result.error.startswith(
        f"The identity provider could not log you in: temporarily_unavailable: {SCRIPT}"
    ), result
    assert not CONTROL & set(result.err.replace("\n", ""))
    assert login["box"].keyring() == login["before"]
    assert login["tenant"].hits["token"] == 0
