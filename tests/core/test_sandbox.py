"""EXLS_SANDBOX: a trial run that leaves the real machine alone (issue 25, item 7).

The real kernel keyring throughout: the sandbox's store is the session keyring, and the
real store and token cache (the persistent keyring, this test's scope) must stay untouched.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from cli_kit import exls

from exls_core import paths
from exls_core.config import DEFAULT_CLIENT_ID, DEFAULT_ISSUER, Settings
from exls_core.errors import ConfigError
from exls_core.plugin.testing import ExlsSandbox, exls_sandbox
from exls_core.session import kernel_keyring as kk
from exls_core.session import token_cache
from exls_core.session.kernel_store import KernelSessionStore, SandboxSessionStore
from exls_core.session.model import Session
from exls_core.session.selection import open_store
from kernel_testkit import scoped_keys

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the Linux kernel keyring")

__all__ = ["exls_sandbox"]  # the fixture under test, as plugin authors load it

NOW = time.time()


def session(flow: str) -> Session:
    return Session(
        issuer=DEFAULT_ISSUER,
        client_id=DEFAULT_CLIENT_ID,
        access_token=f"at-{flow}-" + "x" * 900,  # several chunks, as real tokens are
        expires_at=NOW + 3600,
        refresh_token="rt",
        id_token="id-" + "y" * 1300,
        scopes=("openid",),
        flow=flow,
        subject="s",
        email=None,
        logged_in_at=NOW,
    )


def test_every_directory_is_inside_the_test_home(exls_sandbox: ExlsSandbox) -> None:
    home = exls_sandbox.home
    assert paths.user_dir("cache") == str(home / "cache")  # discovery, JWKS, plugin index
    assert paths.user_dir("state") == str(home / "state")  # the remembered email
    assert paths.config_file() == exls_sandbox.config_file == home / "config" / "config.toml"
    assert paths.runtime_dir() is None
    assert paths.lock_dir().is_relative_to(home)


def test_the_sandbox_store_never_touches_the_real_store_or_token_cache(
    exls_sandbox: ExlsSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real session, with its token cache, in the persistent keyring.
    monkeypatch.delenv("EXLS_SANDBOX")
    real = open_store(Settings(session_store="kernel", token_cache=True))
    assert isinstance(real, KernelSessionStore) and real.cache is not None
    real.save(session("real"))
    before = {name: described for name, (_, described) in scoped_keys().items()}
    assert token_cache.NAME in before  # the cache record is there: the control

    monkeypatch.setenv("EXLS_SANDBOX", str(exls_sandbox.home))
    # Whatever else is configured, the sandbox has its own store and no cache.
    trial = open_store(Settings(session_store="kernel", token_cache=True))
    assert isinstance(trial, SandboxSessionStore) and trial.cache is None
    assert trial.load() is None  # it does not see the real session
    trial.save(session("trial"))
    assert open_store(Settings()).load() == session("trial")  # another process: the same
    # Its keys are behind its own gate in the session keyring, none in the persistent keyring.
    ring = kk.keyring_id(kk.SESSION_KEYRING, create=False)
    gate = trial.keyring._gate  # type: ignore[attr-defined]
    assert gate.startswith("sandbox-")
    store = kk.find_store_keyring(ring, gate)
    assert store is not None and kk.search(store, "session") is not None
    assert {name for name in scoped_keys() if name.startswith("sandbox-")} == set()
    assert trial.clear()

    # The real keys are exactly as they were: nothing added, nothing dropped.
    after = {name: described for name, (_, described) in scoped_keys().items()}
    assert after == before
    monkeypatch.delenv("EXLS_SANDBOX")
    assert KernelSessionStore().load() == session("real")


def test_two_sandboxes_keep_their_sessions_apart(
    exls_sandbox: ExlsSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_store(Settings()).save(session("first"))
    other = tmp_path / "other"
    monkeypatch.setenv("EXLS_SANDBOX", str(other))
    assert open_store(Settings()).load() is None


def test_the_cli_runs_sandboxed(exls_sandbox: ExlsSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXLS_SANDBOX")
    KernelSessionStore().save(session("real"))  # a real session, which the sandbox leaves be
    monkeypatch.setenv("EXLS_SANDBOX", str(exls_sandbox.home))
    open_store(Settings()).save(session("trial"))
    env = {"EXLS_SANDBOX": str(exls_sandbox.home)}
    status = exls("auth", "status", "--json", **env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["session_store"] == "sandbox"
    assert exls("auth", "token", **env).stdout.strip() == session("trial").access_token
    assert exls("logout", **env).returncode == 0
    assert exls("auth", "token", **env).returncode == 1
    # Outside the sandbox the real session is untouched: a sandboxed logout reaches no other
    # store, and the sandbox's own session is nowhere else.
    monkeypatch.delenv("EXLS_SANDBOX")
    assert KernelSessionStore().load() == session("real")
    real = exls("auth", "token", EXLS_SESSION_STORE="kernel")
    assert real.stdout.strip() == session("real").access_token


def test_a_relative_sandbox_is_a_one_line_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXLS_SANDBOX", "trial")
    with pytest.raises(ConfigError):
        paths.user_dir("cache")
    result = exls("auth", "status", EXLS_SANDBOX="trial")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "Error: EXLS_SANDBOX: expected an absolute directory, got 'trial' "
        '(e.g. EXLS_SANDBOX="$(mktemp -d)").'
    ]


def test_a_sandboxed_run_never_asks_the_real_agent(
    exls_sandbox: ExlsSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a runtime directory the real agent's socket is under the temp directory, which
    a sandbox shares; the same config file makes the agent's inputs match too."""
    import shutil
    import tempfile

    import exls_core
    from exls_core import NotLoggedIn
    from exls_core.session import agent_protocol as proto
    from exls_core.session.agent_store import AgentSessionStore
    from testkit.agents import agents_collected

    temp = tempfile.mkdtemp(prefix="exls-sbx-")  # short: a socket path has ~100 bytes
    config = exls_sandbox.home / "shared.toml"
    config.write_text("[auth]\n")
    monkeypatch.setenv("EXLS_CONFIG_FILE", str(config))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", temp)
    try:
        with agents_collected():
            monkeypatch.delenv("EXLS_SANDBOX")
            real = AgentSessionStore(Settings())
            real.save(session("real"))  # starts the real agent, at $TMPDIR/exls-<uid>
            assert exls_core.access_token() == session("real").access_token  # the control
            monkeypatch.setenv(proto.SOCKET_ENV, proto.socket_path())  # named, as forwarded

            monkeypatch.setenv("EXLS_SANDBOX", str(exls_sandbox.home))
            assert proto.fast_record() is None
            assert proto.socket_path() == str(exls_sandbox.home / "agent" / proto.SOCKET_NAME)
            with pytest.raises(NotLoggedIn):
                exls_core.access_token()

            monkeypatch.delenv("EXLS_SANDBOX")
            assert real.clear()  # the agent, holding nothing, exits
    finally:
        shutil.rmtree(temp)
