"""The exls agent: its socket directory, the peer check, the protocol's refusals (with a small
fuzzer), the store seen through it, and the store selection that picks it.

An agent here is either the real detached process (started as ``exls login`` starts it) or
the same Agent class served by a thread of the test, where a test needs to reach into it.
"""

from __future__ import annotations

import json
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import keyring.core
import pytest
from keyring.backends import fail
from session_testkit import CLIENT_ID, FakeIdP, make_session

from exls_core.config import Settings
from exls_core.errors import ExlsError
from exls_core.session import agent_protocol as proto
from exls_core.session.agent import Agent, bind
from exls_core.session.agent_store import AgentSessionStore
from exls_core.session.model import binding
from exls_core.session.refresh import get_access_token, renew_access_token
from exls_core.session.revoke import logout
from exls_core.session.selection import open_store
from exls_core.session.store import StoreError
from testkit.agents import agents_collected, running_agents, wait_gone

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SO_PEERCRED, setpriv")

NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


@pytest.fixture(autouse=True)
def _agents() -> Iterator[None]:
    with agents_collected():
        yield


@pytest.fixture
def runtime() -> Path:
    return Path(os.environ["XDG_RUNTIME_DIR"])


# --- the socket's directory and path


def test_the_directory_is_created_private_under_the_runtime_dir(runtime: Path) -> None:
    path, present = proto.checked_socket_path(create=True)
    assert (path, present) == (str(runtime / "exalsius" / "agent.sock"), False)
    assert (runtime / "exalsius").stat().st_mode & 0o777 == 0o700


def test_without_a_runtime_dir_a_per_uid_directory_under_the_temp_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # it caches the first answer
    path, _ = proto.checked_socket_path(create=True)
    assert path == str(tmp_path / f"exls-{os.getuid()}" / "agent.sock")
    assert (tmp_path / f"exls-{os.getuid()}").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("how", ["symlink", "other owner", "group readable", "world open"])
def test_an_unsafe_directory_is_refused_in_one_line_naming_it(
    runtime: Path, tmp_path: Path, how: str
) -> None:
    directory = runtime / "exalsius"
    if how == "symlink":
        target = tmp_path / "elsewhere"
        target.mkdir(mode=0o700)
        directory.symlink_to(target)
    else:
        directory.mkdir(mode=0o700)
        if how == "other owner":
            os.chown(directory, NOBODY, NOBODY)
        else:
            directory.chmod(0o750 if how == "group readable" else 0o777)
    with pytest.raises(proto.UnsafeSocketPath) as caught:
        proto.checked_socket_path(create=True)
    message = caught.value.message
    assert message.startswith(f"Refusing the exls agent's {directory}: ") and "\n" not in message
    assert proto.SOCKET_ENV in (caught.value.hint or "")
    # The store says the same before a login starts.
    with pytest.raises(StoreError) as again:
        AgentSessionStore(Settings()).check_usable()
    assert str(directory) in again.value.message


@pytest.mark.parametrize("what", ["symlink", "file", "other owner"])
def test_an_unsafe_socket_path_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, what: str
) -> None:
    directory = tmp_path / "sock"
    directory.mkdir(mode=0o700)
    path = directory / "agent.sock"
    if what == "symlink":
        path.symlink_to(tmp_path / "nowhere")
    elif what == "file":
        path.write_text("")
    else:
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(path))
        listener.close()
        os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
    monkeypatch.setenv(proto.SOCKET_ENV, str(path))  # the override gets the same checks
    with pytest.raises(proto.UnsafeSocketPath) as caught:
        proto.checked_socket_path()
    assert str(path) in caught.value.message
    with pytest.raises(StoreError):
        AgentSessionStore(Settings()).load()


# --- an agent served by a thread of this test


@pytest.fixture
def served() -> Iterator[tuple[Agent, str]]:
    """The Agent class on a socket everyone may reach (for the peer check): in a directory
    of its own under the temp directory, since pytest's own is private."""
    import shutil
    import tempfile

    directory = tempfile.mkdtemp(prefix="exls-agent-test-")
    os.chmod(directory, 0o755)  # noqa: S103
    path = os.path.join(directory, "agent.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o777)  # noqa: S103 (the point: only the peer check keeps others out)
    listener.listen(64)
    agent = Agent(listener, Settings(http_timeout=5.0))
    thread = threading.Thread(target=agent.serve, name="test-agent")
    thread.start()
    yield agent, path
    agent.stop()
    thread.join(60)
    listener.close()
    shutil.rmtree(directory)


def raw_exchange(path: str, data: bytes, *, shut: bool = True) -> bytes:
    """Send raw bytes, then read whatever comes back until the agent closes."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(60)
    conn.connect(path)
    received = b""
    try:
        conn.sendall(data)
        if shut:
            conn.shutdown(socket.SHUT_WR)
        while chunk := conn.recv(65536):
            received += chunk
        return received
    except (BrokenPipeError, ConnectionResetError):
        return received  # the agent closed on a request it would not read to the end
    finally:
        conn.close()


def request(path: str, message: dict[str, Any]) -> dict[str, Any]:
    return proto.call(path, message, timeout=60)


def test_another_uid_is_refused_without_a_byte(served: tuple[Agent, str]) -> None:
    agent, path = served
    agent.store.save(make_session("https://idp.example/", refresh_token="rt-secret"))
    frame = proto.encode({"v": 1, "op": "token", "binding": ""})
    client = (
        "import socket,sys\ns=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1])\n"
        "try:\n s.sendall(bytes.fromhex(sys.argv[2]));s.shutdown(socket.SHUT_WR)\n"
        " sys.stdout.write(repr(s.recv(65536)))\n"
        "except (BrokenPipeError, ConnectionResetError):\n sys.stdout.write(repr(b''))"
    )
    result = subprocess.run(
        [*AS_NOBODY, sys.executable, "-c", client, path, frame.hex()],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert (result.returncode, result.stdout) == (0, "b''"), result.stderr
    # and this uid is served
    assert request(path, {"op": "status"})["ok"] is True


def test_the_peer_check_reads_the_peer_uid() -> None:
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        assert proto.peer_uid(left) == os.getuid() and proto.same_user(left)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (struct.pack(">I", proto.MAX_MESSAGE + 1) + b"{}", "oversized"),
        (struct.pack(">I", 2**32 - 1), "oversized header only"),
        (struct.pack(">I", 5) + b"{nope", "not JSON"),
        (struct.pack(">I", 2) + b"[]", "not an object"),
        (struct.pack(">I", 10) + b"{}", "cut short"),
        (b"\x00\x00", "half a header"),
        (b"", "nothing"),
        (struct.pack(">I", 4000) + b"[" * 2000 + b"]" * 2000, "deeply nested"),
    ],
)
def test_malformed_requests_get_no_answer_and_break_nothing(
    served: tuple[Agent, str], data: bytes, why: str
) -> None:
    _, path = served
    assert raw_exchange(path, data) == b"", why
    assert request(path, {"op": "status"})["ok"] is True


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"v": 3, "op": "status"}, "version"),
        ({"op": "status"}, "version"),
        ({"v": 1, "op": "renew", "rejected": "at"}, "version"),  # renew came with version 2
        ({"v": 2, "op": "renew", "binding": ""}, "request"),  # which token was refused?
        ({"v": 2, "op": "renew", "rejected": "at"}, "not_logged_in"),
        ({"v": 1, "op": "steal"}, "request"),
        ({"v": 1}, "request"),
        ({"v": 1, "op": "put", "session": "{}"}, "request"),
        ({"v": 1, "op": "put", "session": 7}, "request"),
        ({"v": 1, "op": "token"}, "not_logged_in"),
    ],
)
def test_requests_it_cannot_serve_are_refused_by_name(
    served: tuple[Agent, str], message: dict[str, Any], error: str
) -> None:
    _, path = served
    answer = json.loads(raw_exchange(path, proto.encode(message))[4:])
    assert (answer["ok"], answer["error"]) == (False, error)


def test_a_slow_or_silent_client_blocks_nobody(served: tuple[Agent, str]) -> None:
    _, path = served
    stalled = []
    for _ in range(10):  # half a request each, then silence
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(path)
        conn.sendall(struct.pack(">I", 100) + b'{"v":1,')
        stalled.append(conn)
    try:
        assert request(path, {"op": "status"})["ok"] is True
    finally:
        for conn in stalled:
            conn.close()


def test_fuzzed_requests_never_take_the_agent_down(served: tuple[Agent, str]) -> None:
    agent, path = served
    session = make_session("https://idp.example/", refresh_token="rt-secret")
    agent.store.save(session)
    rng = random.Random(21)
    seeds = [
        proto.encode({"v": 1, "op": "status"}),
        proto.encode({"v": 1, "op": "token", "binding": "x"}),
        proto.encode({"v": 1, "op": "put", "session": "{}"}),
    ]
    for _ in range(300):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            where = rng.randrange(len(data) + 1)
            kind = rng.random()
            if kind < 0.4 and data:
                data[min(where, len(data) - 1)] = rng.randrange(256)
            elif kind < 0.7:
                data[where:where] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            else:
                del data[where : where + rng.randint(1, 8)]
        answer = raw_exchange(path, bytes(data))
        assert b"rt-secret" not in answer
    assert request(path, {"op": "status"})["session"]["subject"] == session.subject
    assert agent.store.load() == session


def test_clients_never_get_the_refresh_or_id_token(served: tuple[Agent, str]) -> None:
    agent, path = served
    agent.store.save(make_session("https://idp.example/", refresh_token="rt-secret"))
    for op in ("status", "token"):
        raw = raw_exchange(path, proto.encode({"v": 1, "op": op, "binding": ""}))
        assert b"rt-secret" not in raw and b"header.payload.signature" not in raw
    assert request(path, {"op": "status"})["session"]["refreshable"] is True


def test_ten_clients_at_once_see_one_renewal(
    served: tuple[Agent, str], idp: FakeIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent, path = served
    agent.store.save(make_session(idp.issuer, expires_at=time.time() + 5))
    monkeypatch.setenv(proto.SOCKET_ENV, path)
    monkeypatch.setattr(proto, "check_dir", lambda path, create: None)  # the open directory
    settings = Settings(issuer=idp.issuer, client_id=CLIENT_ID, http_timeout=5.0)
    tokens: list[str] = []
    start = threading.Barrier(10)

    def one() -> None:
        start.wait(60)
        tokens.append(get_access_token(settings, store=AgentSessionStore(settings)))

    threads = [threading.Thread(target=one) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert tokens == ["at-1"] * 10
    assert (idp.refreshes, idp.rejected) == (1, 0)
    held = agent.store.load()
    assert held is not None and held.refresh_token == "rt-1"  # the rotated one, kept inside


def test_a_token_the_api_refused_is_renewed_though_still_valid_once_for_two_clients(
    served: tuple[Agent, str], idp: FakeIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent, path = served
    agent.store.save(make_session(idp.issuer, access_token="at-old"))  # valid for an hour
    monkeypatch.setenv(proto.SOCKET_ENV, path)
    monkeypatch.setattr(proto, "check_dir", lambda path, create: None)  # the open directory
    settings = idp_settings(idp)
    # The API refused at-old (revoked, say): the agent refreshes at the provider.
    token, expires_at = renew_access_token("at-old", settings, store=AgentSessionStore(settings))
    assert token == "at-1" and expires_at > time.time() + 3000
    assert (idp.refreshes, idp.rejected) == (1, 0)
    # Another client the API refused the same token gets the new one: no second grant.
    again = renew_access_token("at-old", settings, store=AgentSessionStore(settings))
    assert again[0] == "at-1" and (idp.refreshes, idp.rejected) == (1, 0)
    held = agent.store.load()
    assert held is not None and (held.access_token, held.refresh_token) == ("at-1", "rt-1")


def test_an_agent_of_version_1_refuses_renew_in_one_line_and_keeps_the_session(
    served: tuple[Agent, str], idp: FakeIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent, path = served
    agent.store.save(make_session(idp.issuer, access_token="at-old"))
    monkeypatch.setenv(proto.SOCKET_ENV, path)
    monkeypatch.setattr(proto, "check_dir", lambda path, create: None)
    monkeypatch.setattr(proto, "VERSION", 1)  # the agent of an exls from before renew
    settings = idp_settings(idp)
    with pytest.raises(StoreError) as caught:
        renew_access_token("at-old", settings, store=AgentSessionStore(settings))
    assert caught.value.message == (
        f"The exls agent at {path} is older than this exls and cannot renew a token the API "
        "refused."
    )
    assert "exls auth agent" in (caught.value.hint or "") and idp.refreshes == 0
    assert get_access_token(settings, store=AgentSessionStore(settings)) == "at-old"


def test_a_refused_renewal_ends_the_session_and_the_agent(
    served: tuple[Agent, str], idp: FakeIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent, path = served
    agent.store.save(make_session(idp.issuer, expires_at=time.time() + 5, refresh_token="rt-x"))
    agent.held_once = True
    answer = request(path, {"op": "token", "binding": binding(idp.issuer, CLIENT_ID)})
    assert (answer["ok"], answer["error"]) == (False, "expired")
    assert agent.stopping.wait(60)  # it holds nothing: it exits
    assert agent.store.load() is None


def idp_settings(idp: FakeIdP) -> Settings:
    return Settings(issuer=idp.issuer, client_id=CLIENT_ID, http_timeout=5.0)


# --- the real, detached agent


def test_stale_socket_is_replaced_and_a_live_one_kept(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    directory.mkdir(mode=0o700)
    path = str(directory / "agent.sock")
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(path)
    dead.close()  # a socket file nobody listens on: an agent killed with SIGKILL
    listener = bind(path)
    assert listener is not None
    try:
        assert bind(path) is None  # a live agent answers there: left alone
    finally:
        listener.close()


def test_the_detached_agent_holds_serves_and_leaves(idp: FakeIdP, runtime: Path) -> None:
    settings = idp_settings(idp)
    store = AgentSessionStore(settings)
    assert store.load() is None and store.load_hot() is None  # none runs yet: logged out
    store.check_usable()
    store.save(make_session(idp.issuer, access_token="at-held", refresh_token="rt-0"))
    pid = store.pid
    assert pid is not None and running_agents() == [pid]
    # Detached: its own session, working directory /, not dumpable, no token in argv/environ.
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    assert int(stat[3]) != os.getsid(0) and os.readlink(f"/proc/{pid}/cwd") == "/"
    assert Path(f"/proc/{pid}/environ").stat().st_uid == 0  # root-owned: not dumpable
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert b"at-held" not in cmdline and b"rt-0" not in cmdline
    assert get_access_token(settings, store=AgentSessionStore(settings)) == "at-held"
    facts = AgentSessionStore(settings)
    session = facts.load()
    assert session is not None and session.refresh_token is None and facts.refreshable(session)
    # A second login hands over a new session; no second agent.
    AgentSessionStore(settings).save(make_session(idp.issuer, access_token="at-2"))
    assert running_agents() == [pid]
    assert get_access_token(settings, store=AgentSessionStore(settings)) == "at-2"
    result = logout(settings, store=AgentSessionStore(settings))
    assert (result.was_logged_in, result.revocation_problem) == (True, None)
    assert [r[:2] for r in idp.revoked] == [("rt-0", "refresh_token"), ("at-2", "access_token")]
    assert wait_gone(pid)
    assert not (runtime / "exalsius" / "agent.sock").exists()
    assert AgentSessionStore(settings).load() is None


def test_a_killed_agent_is_reported_as_gone(idp: FakeIdP) -> None:
    settings = idp_settings(idp)
    store = AgentSessionStore(settings)
    store.save(make_session(idp.issuer))
    assert store.pid is not None
    os.kill(store.pid, 9)
    assert wait_gone(store.pid)
    with pytest.raises(StoreError) as caught:
        get_access_token(settings, store=AgentSessionStore(settings))
    assert "held in memory by the exls agent, which is gone" in caught.value.message
    assert caught.value.hint == 'Run "exls login" to log in again.'
    # A new login replaces the stale socket.
    again = AgentSessionStore(settings)
    again.save(make_session(idp.issuer, access_token="at-new"))
    assert get_access_token(settings, store=AgentSessionStore(settings)) == "at-new"
    assert again.end(settings)[0] is True
    assert again.pid is not None and wait_gone(again.pid)


# --- which store


@pytest.fixture
def no_keyring_backend() -> Iterator[None]:
    previous = keyring.core._keyring_backend
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.core._keyring_backend = previous


def test_auto_in_a_container_sharing_the_host_users_takes_the_agent(
    no_keyring_backend: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exls_core.session import selection

    monkeypatch.setattr(selection, "shares_host_keyring", lambda: True)
    store = open_store(Settings())
    assert store.kind == "agent"  # the kernel keyring is allowed here, and still not used
    assert store.cache is not None and not store.cache.enabled


def test_the_switch_chooses_the_agent_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    from exls_core.config import load_settings

    assert open_store(load_settings({"EXLS_SESSION_STORE": "agent"})).kind == "agent"


def test_container_detection() -> None:
    from exls_core.container import shares_host_keyring

    identity = "         0          0 4294967295\n"
    mapped = "         0     100000      65536\n"
    docker = {"/.dockerenv"}.__contains__
    assert shares_host_keyring({}, docker, lambda: identity)
    assert not shares_host_keyring({}, docker, lambda: mapped)  # its own user namespace
    assert not shares_host_keyring({}, set().__contains__, lambda: identity)  # not a container
    assert shares_host_keyring(
        {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, set().__contains__, lambda: identity
    )


# --- exls auth token through the agent: the fast path

LIGHT_PROBE = """
import sys
sys.argv = ["exls", "auth", "token"]
code = None
try:
    from exls_core.cli import run
    run()
except SystemExit as exc:
    code = exc.code
modules = sorted(sys.modules)
import json
print()
print(json.dumps({"code": code, "modules": modules}))
"""
AGENT_HEAVY = (
    "keyring",
    "exls_core.config",
    "exls_core.session.store",
    "exls_core.session.refresh",
    "exls_core.session.selection",
    "json",  # the protocol uses the C parts only
    "re",
    "socket",  # _socket only
    "selectors",
    "dataclasses",
    "typing",
)


def test_auth_token_from_the_agent_reads_no_settings_and_imports_little(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXLS_SESSION_STORE", "agent")
    settings = Settings()
    store = AgentSessionStore(settings)
    session = make_session(settings.issuer, client_id=settings.client_id, access_token="at-fast")
    store.save(session)
    try:
        result = subprocess.run(
            [sys.executable, "-c", LIGHT_PROBE], capture_output=True, text=True, timeout=60
        )
        *output, report = result.stdout.rstrip("\n").split("\n")
        data = json.loads(report)
        assert (output, data["code"]) == (["at-fast", ""], 0), result.stderr
        modules = set(data["modules"])
        assert "exls_core.session.agent_protocol" in modules  # the probe sees the path
        heavy = sorted(m for m in modules for h in AGENT_HEAVY if m == h or m.startswith(h + "."))
        assert heavy == []
        # Other settings (another issuer): not the login's inputs, so the full path decides.
        other = dict(os.environ, EXLS_AUTH_ISSUER="https://elsewhere.example/")
        result = subprocess.run(
            [sys.executable, "-c", LIGHT_PROBE],
            capture_output=True,
            text=True,
            env=other,
            timeout=60,
        )
        data = json.loads(result.stdout.rstrip("\n").split("\n")[-1])
        assert data["code"] == 1 and "exls_core.session.store" in data["modules"]
        assert "Stored session is for issuer" in result.stderr
    finally:
        assert store.clear() is True
        assert store.pid is not None and wait_gone(store.pid)


def test_a_provider_that_is_down_keeps_the_session_and_says_so(
    served: tuple[Agent, str], idp: FakeIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent, path = served
    session = make_session(idp.issuer, expires_at=time.time() + 5)
    agent.store.save(session)
    monkeypatch.setenv(proto.SOCKET_ENV, path)
    monkeypatch.setattr(proto, "check_dir", lambda path, create: None)  # the open directory
    idp.token_status = 503
    settings = idp_settings(idp)
    with pytest.raises(ExlsError) as caught:
        get_access_token(settings, store=AgentSessionStore(settings))
    assert caught.value.message.startswith("Could not refresh the session: the identity provider")
    assert caught.value.hint == "Your session was kept; try again."
    assert agent.store.load() == session and not agent.stopping.is_set()


# --- the agent as the token cache of a Secret Service inside such a container


def test_the_agent_caches_a_keyring_stores_token(memory_keyring: Any) -> None:
    from exls_core.session.agent_protocol import fast_record
    from exls_core.session.agent_store import AgentTokenCache
    from exls_core.session.store import SessionStore

    settings = Settings()
    store = SessionStore(cache=AgentTokenCache())
    store.save(make_session(settings.issuer, client_id=settings.client_id, access_token="at-1"))
    (agent,) = running_agents()
    fast = fast_record()  # exls auth token's path: the agent, not the keyring
    assert fast is not None and fast[0] == "at-1"
    assert store.cache is not None
    found = store.cache.lookup(binding(settings.issuer, settings.client_id))
    assert found is not None and found[0] == "at-1"
    assert store.cache.lookup(binding("https://other.example/", "c")) is None
    # A new session replaces it (the store drops the old token first, then puts the new).
    store.save(make_session(settings.issuer, client_id=settings.client_id, access_token="at-2"))
    fast = fast_record()
    assert fast is not None and fast[0] == "at-2"
    # The agent never held the session: only the access token.
    answer = proto.call(proto.socket_path(), {"v": 1, "op": "status"})
    assert answer["session"] is None
    (agent,) = running_agents()
    assert store.clear() is True  # logout drops it, and the agent, holding nothing, exits
    assert wait_gone(agent)
    assert fast_record() is None


def test_a_token_about_to_expire_is_not_cached_in_the_agent(memory_keyring: Any) -> None:
    from exls_core.session.agent_store import AgentTokenCache

    cache = AgentTokenCache()
    cache.put("at-short", time.time() + 30, "b", "g")
    assert running_agents() == [] and cache.lookup("b") is None


def test_auto_in_such_a_container_caches_a_keyring_stores_token_in_the_agent(
    memory_keyring: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exls_core.session import selection
    from exls_core.session.agent_store import AgentTokenCache

    monkeypatch.setattr(selection, "shares_host_keyring", lambda: True)
    store = open_store(Settings())
    assert store.kind == "keyring" and isinstance(store.cache, AgentTokenCache)
    assert not isinstance(open_store(Settings(token_cache=True)).cache, AgentTokenCache)


def test_a_login_right_after_a_logout_is_never_lost(idp: FakeIdP) -> None:
    """The agent stops once it holds nothing; a hand-over that meets it stopping starts a new
    agent instead of vanishing with the old one."""
    settings = idp_settings(idp)
    for round_ in range(5):
        store = AgentSessionStore(settings)
        store.save(make_session(idp.issuer, access_token=f"at-{round_}", refresh_token=None))
        assert get_access_token(settings, store=AgentSessionStore(settings)) == f"at-{round_}"
        assert store.clear() is True  # then at once the next round's login
    assert AgentSessionStore(settings).load() is None
    assert all(wait_gone(pid) for pid in running_agents())
