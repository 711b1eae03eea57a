"""The forwarding agent (issue 26): this machine's session, served over ``ssh -R``.

A ForwardingAgent is served by a thread of the test in front of a keyring store (the
in-memory keyring of session_testkit, standing for the laptop's Secret Service), on a
socket that EXLS_AGENT_SOCKET names, as on the server. The client side is exls itself:
the store selection, ``exls auth token``, ``auth status`` and ``logout`` in this process.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from session_testkit import CLIENT_ID, FakeIdP, MemoryKeyring, make_session
from test_session_cli import exls

from exls_core.config import Settings
from exls_core.session import agent_protocol as proto
from exls_core.session.agent_forward import (
    ForwardingAgent,
    ensure_forwarding_agent,
    origin,
    stop_when_idle,
)
from exls_core.session.agent_store import AgentSessionStore
from exls_core.session.model import binding
from exls_core.session.refresh import renew_access_token
from exls_core.session.revoke import logout
from exls_core.session.selection import open_store
from exls_core.session.store import SessionStore
from testkit.agents import agents_collected, running_agents, wait_gone

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SO_PEERCRED")


@pytest.fixture
def laptop(idp: FakeIdP, memory_keyring: MemoryKeyring) -> SessionStore:
    """The laptop's store: the keyring, with a session whose token expires soon."""
    store = SessionStore()
    store.save(make_session(idp.issuer, access_token="at-old", expires_at=time.time() + 5))
    return store


@pytest.fixture
def forwarded(
    idp: FakeIdP, laptop: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ForwardingAgent, str]]:
    """A ForwardingAgent over the laptop's store; EXLS_AGENT_SOCKET names its socket."""
    directory = tempfile.mkdtemp(prefix="exls-fwd-test-")
    path = os.path.join(directory, "exls.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    settings = Settings(
        issuer=idp.issuer,
        client_id=CLIENT_ID,
        http_timeout=5.0,
        session_store="keyring",
        token_cache=False,
    )
    agent = ForwardingAgent(listener, settings)
    thread = threading.Thread(target=agent.serve, name="test-forwarding-agent")
    thread.start()
    monkeypatch.setenv(proto.SOCKET_ENV, path)
    monkeypatch.setenv("EXLS_AUTH_ISSUER", idp.issuer)
    monkeypatch.setenv("EXLS_AUTH_CLIENT_ID", CLIENT_ID)
    try:
        yield agent, path
    finally:
        agent.stop()
        thread.join(60)
        listener.close()
        shutil.rmtree(directory)


def forwarded_from() -> str:
    return f"{origin()['user']}@{origin()['host']}"


def ask(path: str, message: dict[str, Any]) -> dict[str, Any]:
    return proto.call(path, message, timeout=60)


@pytest.mark.parametrize(
    "message",
    [
        {"op": "put", "session": make_session("https://other.example/").to_json()},
        {"op": "clear"},
        {"op": "cache_put", "at": "x", "exp": 1e12, "for": "b", "gen": "g", "inputs": ["i"]},
        {"op": "cache_drop"},
        {"op": "logout"},
        {"op": "logout", "end_forwarded": "yes"},
    ],
)
def test_the_other_machine_cannot_change_this_ones_session(
    forwarded: tuple[ForwardingAgent, str], laptop: SessionStore, message: dict[str, Any]
) -> None:
    agent, path = forwarded
    before = laptop.load()
    answer = ask(path, message)
    assert (answer["ok"], answer["error"]) == (False, "forwarded")
    assert answer["hint"] == f"Unset {proto.SOCKET_ENV} to use a session of this machine instead."
    assert laptop.load() == before and not agent.stopping.is_set()


def test_tokens_and_facts_cross_never_the_refresh_token(
    forwarded: tuple[ForwardingAgent, str], laptop: SessionStore, idp: FakeIdP
) -> None:
    _, path = forwarded
    status = ask(path, {"op": "status"})
    assert status["origin"] == origin() and status["session"]["refreshable"] is True
    assert status["session"]["refresh_token"] is None and status["session"]["id_token"] is None
    # The token expires within a minute: renewed here, in the laptop's store, once.
    answer = ask(path, {"op": "token", "binding": laptop.load_hot().binding})  # type: ignore[union-attr]
    assert answer["ok"] and answer["at"] == "at-1"
    assert "rt-" not in repr(answer) and "rt-" not in repr(status)
    held = laptop.load()
    assert held is not None and (held.access_token, held.refresh_token) == ("at-1", "rt-1")
    assert (idp.refreshes, idp.rejected) == (1, 0)


def test_a_token_the_api_refused_is_renewed_on_the_laptop_once_for_two_clients(
    forwarded: tuple[ForwardingAgent, str], laptop: SessionStore, idp: FakeIdP
) -> None:
    laptop.save(make_session(idp.issuer, access_token="at-old"))  # valid for an hour
    settings = Settings(issuer=idp.issuer, client_id=CLIENT_ID, http_timeout=5.0)
    # The API refused at-old on the server: a real refresh in the laptop's store.
    token, _ = renew_access_token("at-old", settings, store=AgentSessionStore(settings))
    assert token == "at-1" and (idp.refreshes, idp.rejected) == (1, 0)
    again = renew_access_token("at-old", settings, store=AgentSessionStore(settings))
    assert again[0] == "at-1" and (idp.refreshes, idp.rejected) == (1, 0)
    held = laptop.load()
    assert held is not None and (held.access_token, held.refresh_token) == ("at-1", "rt-1")


def test_the_server_uses_it_in_auto_and_says_whose_it_is(
    forwarded: tuple[ForwardingAgent, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, path = forwarded
    store = open_store(Settings())
    assert isinstance(store, AgentSessionStore)
    code, out, err = exls(monkeypatch, capsys, "auth", "token")
    assert (code, out, err) == (0, "at-1\n", "")
    code, out, _ = exls(monkeypatch, capsys, "auth", "status")
    who = forwarded_from()
    assert code == 0 and f"agent:    forwarded from {who} by its exls agent" in out
    assert f"socket {path})" in out


def test_logout_on_the_server_needs_the_flag_to_end_the_laptops_session(
    forwarded: tuple[ForwardingAgent, str],
    laptop: SessionStore,
    idp: FakeIdP,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    agent, path = forwarded
    code, out, err = exls(monkeypatch, capsys, "logout")
    who = forwarded_from()
    assert (code, out) == (1, "")
    first, hint = err.splitlines()
    assert first.startswith(f"Error: Your session belongs to {who}") and path in first
    assert "unset EXLS_AGENT_SOCKET or close the SSH forward" in hint
    assert laptop.load() is not None and idp.revoked == []

    code, _, err = exls(monkeypatch, capsys, "logout", "--forwarded")
    assert code == 0 and err.splitlines()[-1] == "Logged out.", err
    assert laptop.load() is None and [kind for _, kind, _ in idp.revoked][:1] == ["refresh_token"]
    assert agent.stopping.wait(60)  # it holds nothing now


def test_a_forward_that_is_gone_fails_in_one_line(
    forwarded: tuple[ForwardingAgent, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    agent, path = forwarded
    agent.stop()  # as if the SSH connection closed: nothing answers, the socket file stays
    for serving in [t for t in threading.enumerate() if t.name == "test-forwarding-agent"]:
        serving.join(60)  # its serve loop has ended before the listener closes
    agent.listener.close()
    monkeypatch.setenv("EXLS_SESSION_STORE", "agent")  # wherever auto would land on this machine
    code, out, err = exls(monkeypatch, capsys, "auth", "token")
    assert (code, out) == (1, "")
    (line,) = err.splitlines()
    assert line.startswith(f"Error: No session at the exls agent {path} ({proto.SOCKET_ENV})")


def test_sshd_accepting_for_a_laptop_agent_that_is_gone_is_no_agent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # sshd accepts on the forwarded socket before it asks the laptop for a channel, and closes
    # the connection when the laptop's agent is gone: that is no agent, and auto must let this
    # machine's own store decide (a login would otherwise run its flow and fail to store).
    directory = tempfile.mkdtemp(prefix="exls-fwd-test-")
    path = os.path.join(directory, "exls.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    stop = threading.Event()

    def accept_and_close() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.close()

    thread = threading.Thread(target=accept_and_close, name="test-sshd-stand-in")
    thread.start()
    monkeypatch.setenv(proto.SOCKET_ENV, path)
    try:
        assert not proto.answers(path)
        assert not isinstance(open_store(Settings(session_store="auto")), AgentSessionStore)
    finally:
        stop.set()
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(60)
        shutil.rmtree(directory)


def test_a_login_on_the_server_is_refused_before_it_starts(
    forwarded: tuple[ForwardingAgent, str],
    laptop: SessionStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, path = forwarded
    before = laptop.load()
    code, out, err = exls(
        monkeypatch, capsys, "login", "--auth-flow", "device_code", "--email", "x@y.z"
    )
    who = forwarded_from()
    assert (code, out) == (1, ""), err
    assert "device" not in err.lower(), err  # refused before the flow starts
    first, hint = err.splitlines()[-2:]
    assert first == (
        f"Error: Failed to store token: the exls agent at {path} serves the session of {who}, "
        "forwarded from there; a login here cannot replace it."
    )
    assert hint == f"Unset {proto.SOCKET_ENV} to log in on this machine, in its own store."
    assert laptop.load() == before


def test_auth_agent_on_a_server_passes_the_forwarded_socket_on(
    forwarded: tuple[ForwardingAgent, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """ssh -R from a server onwards: the same agent, no second one in front of it."""
    _, path = forwarded
    assert exls(monkeypatch, capsys, "auth", "agent") == (0, path + "\n", "")


def test_auth_agent_without_a_session_starts_nothing(
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("EXLS_SESSION_STORE", "keyring")
    code, out, err = exls(monkeypatch, capsys, "auth", "agent")
    assert (code, out, err) == (1, "", 'Error: You are not logged in. Run "exls login".\n')
    assert not os.path.exists(proto.default_dir())


@pytest.mark.parametrize("kind", ["agent", "kernel"])
def test_whatever_store_holds_the_session_it_is_forwarded(
    idp: FakeIdP, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """The real detached forwarding agent in front of the in-memory agent (a laptop that is
    itself a container, issue 21) or the kernel keyring (a headless laptop): one renewal,
    in that store; no refresh token out; the laptop's logout ends it."""
    monkeypatch.setenv("EXLS_SESSION_STORE", kind)
    monkeypatch.setenv("EXLS_AUTH_ISSUER", idp.issuer)
    monkeypatch.setenv("EXLS_AUTH_CLIENT_ID", CLIENT_ID)
    settings = Settings(issuer=idp.issuer, client_id=CLIENT_ID, session_store=kind)
    with agents_collected():
        held = open_store(settings)
        held.save(make_session(idp.issuer, expires_at=time.time() + 5))
        before = set(running_agents())
        path = ensure_forwarding_agent()
        assert path.endswith("/exalsius/forward.sock") and len(set(running_agents()) - before) == 1
        status = ask(path, {"op": "status"})
        assert status["origin"] == origin() and status["session"]["refresh_token"] is None
        answer = ask(path, {"op": "token", "binding": binding(idp.issuer, CLIENT_ID)})
        assert (answer["ok"], answer.get("at")) == (True, "at-1"), answer
        assert (idp.refreshes, idp.rejected) == (1, 0)
        assert "rt-" not in repr(answer) + repr(status)
        if kind == "kernel":  # renewed into the laptop's store, the rotated token kept there
            renewed = held.load()
            assert renewed is not None and renewed.refresh_token == "rt-1"
        result = logout(settings)
        assert result.was_logged_in and [r[1] for r in idp.revoked][:1] == ["refresh_token"]
        stop_when_idle()  # as exls logout does: the forwarding agent sees nothing and exits
        assert all(wait_gone(pid) for pid in running_agents())


def test_a_forwarded_session_comes_before_this_servers_cached_token(
    forwarded: tuple[ForwardingAgent, str],
    idp: FakeIdP,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The server's own earlier login (kernel store, token cache on), then a forward: the
    laptop's token, not the one cached on the server (issue 26)."""
    import exls_core
    from exls_core.session import token_cache
    from exls_core.session.kernel_store import KernelSessionStore

    _, path = forwarded
    monkeypatch.setenv("EXLS_TOKEN_CACHE", "1")  # this machine may be a container sharing users
    monkeypatch.delenv(proto.SOCKET_ENV)
    server = KernelSessionStore(cache=token_cache.TokenCache(True))
    server.save(make_session(idp.issuer, access_token="at-server", expires_at=time.time() + 3000))
    assert exls_core.access_token() == "at-server"  # the control: served from the cache
    assert token_cache.cached_token() == "at-server"

    monkeypatch.setenv(proto.SOCKET_ENV, path)
    assert token_cache.cached_token() is None  # the forward decides, not this machine's cache
    assert exls_core.access_token() == "at-1"  # the laptop's, renewed there
    code, out, err = exls(monkeypatch, capsys, "auth", "token")
    assert (code, out, err) == (0, "at-1\n", "")
    server.clear()
