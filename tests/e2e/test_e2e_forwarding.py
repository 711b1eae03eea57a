"""Log in once on the laptop, work on the server (issue 26): the exls agent forwarded over SSH.

Two homes on this machine play the two ends. The laptop: a Secret Service and a real PKCE
login through headless Chromium against the test provider. The server: another home,
temporary and runtime directory, no D-Bus. Between them a relay plays ``ssh -R
SERVER_SOCKET:"$(exls auth agent)"``: a Unix socket on the server's side, created 0600 as
sshd creates it (its default StreamLocalBindMask), each connection carried to the laptop's
agent socket, and every byte that passes recorded.
"""

from __future__ import annotations

import os
import selectors
import shutil
import socket
import stat
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from exls_testbed.cli import (
    ExlsCli,
    Result,
    Timings,
    login_device,
    login_pkce,
    stored_session,
)
from test_e2e_session import _files, _leaks

from testkit.agents import agents_collected, running_agents, wait_gone

if TYPE_CHECKING:
    from exls_testbed.browser import Browser
    from exls_testbed.idp import IdpServer
    from exls_testbed.secret_service import SecretService

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SO_PEERCRED, kernel keyring")

EMAIL = "alice@example.com"
SHORT_TTL = 30  # inside exls's 60 s refresh margin: the first use renews
HANG_GUARD = 60.0


class Relay:
    """``ssh -R LISTEN:TARGET`` in a few lines: accepts on LISTEN, carries each connection to
    TARGET (closing it at once when TARGET does not answer, as ssh fails the channel), and
    records what passes both ways in :attr:`carried`."""

    def __init__(self, listen: Path, target: str) -> None:
        self.listen = listen
        self.target = target
        self.carried = bytearray()
        self.connections = 0
        self.closed = False
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._wake_r, self._wake_w = os.pipe()
        old = os.umask(0o177)  # sshd's StreamLocalBindMask default: the socket is 0600
        try:
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(str(listen))
        finally:
            os.umask(old)
        self.listener.listen(16)
        self._accepting = threading.Thread(target=self._accept)
        self._accepting.start()

    def _accept(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while True:
                ready = {key.fileobj for key, _ in selector.select()}
                if self._wake_r in ready:
                    return
                conn, _ = self.listener.accept()
                with self._lock:
                    self.connections += 1
                thread = threading.Thread(target=self._carry, args=(conn,))
                self._threads.append(thread)
                thread.start()

    def _carry(self, conn: socket.socket) -> None:
        with conn:
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            with upstream:
                try:
                    upstream.connect(self.target)
                except OSError:
                    return  # the channel cannot open: the server's side is closed
                self._pump(conn, upstream)

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        other = {a: b, b: a}
        open_ends = {a, b}
        with selectors.DefaultSelector() as selector:
            for end in open_ends:
                selector.register(end, selectors.EVENT_READ)
            while open_ends:
                events = selector.select(HANG_GUARD)
                if not events:
                    return  # a hang guard: nothing moved for a minute
                for key, _ in events:
                    end = key.fileobj
                    assert isinstance(end, socket.socket)
                    data = end.recv(65536)
                    if data:
                        with self._lock:
                            self.carried += data
                        other[end].sendall(data)
                        continue
                    selector.unregister(end)
                    open_ends.discard(end)
                    try:
                        other[end].shutdown(socket.SHUT_WR)
                    except OSError:
                        open_ends.discard(other[end])

    def close(self) -> None:
        """The SSH connection closes: nothing listens any more (the socket file stays)."""
        self.closed = True
        os.write(self._wake_w, b"x")
        self._accepting.join(HANG_GUARD)
        self.listener.close()
        for thread in self._threads:
            thread.join(HANG_GUARD)
        os.close(self._wake_r)
        os.close(self._wake_w)
        assert not self._accepting.is_alive() and not any(t.is_alive() for t in self._threads)


class Server:
    """The server's own home, temporary and runtime directory (short paths: a socket path
    has at most 107 bytes)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="exls-srv-"))
        self.home = self.root / "home"
        self.tmp = self.root / "tmp"
        self.runtime = self.root / "run"
        for directory in (self.home, self.tmp, self.runtime):
            directory.mkdir(mode=0o700)
        self.socket = self.runtime / "exls.sock"  # as ssh -R /run/user/1000/exls.sock:...

    def cli(self, laptop: ExlsCli) -> ExlsCli:
        env = laptop.env(
            {
                "DBUS_SESSION_BUS_ADDRESS": None,
                "PYTHON_KEYRING_BACKEND": None,
                "XDG_CONFIG_HOME": None,
                "XDG_CACHE_HOME": None,
                "XDG_DATA_HOME": None,
                "XDG_STATE_HOME": None,
                "HOME": str(self.home),
                "TMPDIR": str(self.tmp),
                "XDG_RUNTIME_DIR": str(self.runtime),
                "EXLS_AGENT_SOCKET": str(self.socket),
            }
        )
        return ExlsCli(laptop.executable, env, tmpdir=self.tmp)


@pytest.fixture
def server() -> Iterator[Server]:
    made = Server()
    try:
        yield made
    finally:
        shutil.rmtree(made.root)


def _token(cli: ExlsCli) -> str:
    result = cli.run("auth", "token")
    assert result.returncode == 0 and result.stderr == "", result.describe()
    return result.stdout.strip()


def _fails_in_one_line(result: Result, *words: str) -> None:
    assert (result.returncode, result.stdout) == (1, ""), result.describe()
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.describe()
    for word in words:
        assert word in lines[0], result.describe()


@pytest.fixture
def relays() -> Iterator[list[Relay]]:
    """Relays a test starts; each is closed at the end, whatever happened."""
    started: list[Relay] = []
    yield started
    for relay in started:
        if not relay.closed:
            relay.close()


@pytest.fixture
def agents(secret_service: SecretService) -> Iterator[None]:
    """Every exls agent the test starts must be gone at its end (before the Secret Service)."""
    with agents_collected():
        yield


def test_the_server_uses_the_laptops_session_and_never_gets_its_refresh_token(
    idp: IdpServer,
    exls: ExlsCli,
    browser: Browser,
    secret_service: SecretService,
    agents: None,
    server: Server,
    relays: list[Relay],
    e2e_timings: Timings,
) -> None:
    laptop = exls

    def laptop_session() -> dict[str, str]:
        session = stored_session(secret_service.search())
        assert session is not None
        return session

    # The laptop: a real PKCE login, the session in its Secret Service; tokens live 30 s.
    idp.configure(skip_consent=True, access_token_ttl=SHORT_TTL)
    login = login_pkce(laptop, browser, EMAIL)
    assert login.result.returncode == 0, login.result.describe()
    first = laptop_session()

    # exls auth agent: the socket on stdout, nothing else; an agent serving the keyring's session.
    # (On a machine like this one, a container sharing the host's users, the laptop's exls
    # may also run an agent as its token cache: i21. That one is not the forwarded one.)
    others = set(running_agents())
    started = laptop.run("auth", "agent")
    assert started.returncode == 0 and started.stderr == "", started.describe()
    agent_socket = started.stdout.strip()
    assert started.stdout == agent_socket + "\n" and os.path.isabs(agent_socket)
    assert stat.S_ISSOCK(os.lstat(agent_socket).st_mode)
    assert stat.S_IMODE(os.lstat(agent_socket).st_mode) == 0o600
    (agent,) = set(running_agents()) - others
    again = laptop.run("auth", "agent")  # asked again: the same agent, the same socket
    assert (again.returncode, again.stdout) == (0, started.stdout)
    assert set(running_agents()) - others == {agent}

    # ssh -R SERVER_SOCKET:AGENT_SOCKET, played by the relay.
    relay = Relay(server.socket, agent_socket)
    relays.append(relay)
    assert stat.S_IMODE(os.lstat(server.socket).st_mode) == 0o600
    srv = server.cli(laptop)

    # The server's auth token, across the expiry of the login's token: renewed by the
    # laptop's agent, active at the provider; then served as it is while it is valid.
    idp.configure(access_token_ttl=3600)
    renewing = srv.run("auth", "token")
    assert renewing.returncode == 0 and renewing.stderr == "", renewing.describe()
    token = renewing.stdout.strip()
    assert token != first["access_token"]
    found = idp.lookup(token)
    assert (found["kind"], found["active"]) == ("AccessToken", True), found
    served = srv.run("auth", "token")
    assert (served.returncode, served.stdout) == (0, token + "\n"), served.describe()
    # The Python API (exls_core.session.get_access_token, under exls_core.access_token) too.
    api = ExlsCli(sys.executable, srv.base_env).run(
        "-c", "from exls_core.session import get_access_token; print(get_access_token())"
    )
    assert (api.returncode, api.stdout) == (0, token + "\n"), api.describe()
    e2e_timings.add(
        "forwarded_auth_token", renewed_on_laptop=renewing.seconds, served=served.seconds
    )
    grants = idp.token_grants("refresh_token")
    assert [g["status"] for g in grants] == [200], [g["error"] for g in grants]
    # The renewals happened on the laptop, in its store: its Secret Service has the last ones.
    now = laptop_session()
    assert now["access_token"] == token
    refresh_tokens = [g["params"]["refresh_token"] for g in grants] + [now["refresh_token"]]
    assert refresh_tokens == [first["refresh_token"], now["refresh_token"]]
    assert first["refresh_token"] != now["refresh_token"]  # rotated, kept on the laptop
    assert all(idp.lookup(rt)["kind"] == "RefreshToken" for rt in refresh_tokens)
    assert idp.lookup(now["refresh_token"])["active"] is True

    # What crossed the forward: the access tokens, never a refresh token (nor the ID token).
    carried = bytes(relay.carried)
    assert token.encode() in carried
    assert _leaks(set(refresh_tokens), carried) == []
    assert first["id_token"] and _leaks({first["id_token"], now["id_token"]}, carried) == []

    # auth status names the laptop's user and host.
    status = srv.run("auth", "status")
    assert status.returncode == 0, status.describe()
    assert f"Logged in as {EMAIL}" in status.stdout
    assert f"forwarded from {_user()}@{socket.gethostname()} by its exls agent" in status.stdout
    data = srv.run("auth", "status", "--json").json()
    assert (data["session_store"], data["email"]) == ("agent", EMAIL)
    assert data["forwarded_from"] == f"{_user()}@{socket.gethostname()}"

    # Logout on the server ends nothing of the laptop's without --forwarded; it says why and how.
    refused = srv.run("logout")
    assert (refused.returncode, refused.stdout) == (1, ""), refused.describe()
    assert "belongs to" in refused.stderr and "EXLS_AGENT_SOCKET" in refused.stderr
    assert "--forwarded" in refused.stderr
    assert laptop_session()["refresh_token"] == now["refresh_token"]
    assert idp.lookup(now["refresh_token"])["active"] is True and agent in running_agents()
    assert _token(srv) == token

    # Nothing of the session anywhere in the server's files.
    secrets = {token, first["access_token"], *refresh_tokens}
    leaked = {str(path): _leaks(secrets, path.read_bytes()) for path in _files(server.root)}
    assert {path: found for path, found in leaked.items() if found} == {}

    # The laptop logs out: revoked, its agent exits; the server's next call fails in one line.
    out = laptop.run("logout")
    assert out.returncode == 0, out.describe()
    assert idp.lookup(now["refresh_token"])["active"] is False
    assert wait_gone(agent)
    assert all(wait_gone(pid) for pid in running_agents())  # the token cache's too
    _fails_in_one_line(srv.run("auth", "token"), str(server.socket), "EXLS_AGENT_SOCKET")

    # The SSH connection closes (sshd leaves the socket file): the same one line.
    relay.close()
    _fails_in_one_line(srv.run("auth", "token"), str(server.socket), "EXLS_AGENT_SOCKET")

    # exls login on the server still works, in the server's own store (the kernel keyring; a
    # machine like this one, a container, picks the agent in auto: name the store).
    kernel = {"EXLS_SESSION_STORE": "kernel"}
    idp.configure(device_interval=1)
    here = login_device(srv, browser, EMAIL, env=kernel)
    assert here.result.returncode == 0, here.result.describe()
    own = srv.run("auth", "token", env=kernel)
    assert own.returncode == 0 and own.stdout.strip() not in secrets, own.describe()
    assert srv.run("logout", env=kernel).returncode == 0
    assert running_agents() == []


def _user() -> str:
    import getpass

    return getpass.getuser()
