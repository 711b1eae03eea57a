"""Fixtures for the exls end-to-end tests: a real OpenID provider, Secret Service and browser.

    def test_login(idp, secret_service, browser):
        env = secret_service.subprocess_env(
            idp.exls_env(), browser.handoff_env(login="bob@example.com")
        )
        proc = subprocess.Popen(["exls", "login", "--auth-flow", "pkce"], env=env, ...)
        browser.wait_for_login()          # the browser went through login + consent
        ...
        assert idp.token_grants("authorization_code", succeeded=True)
        assert secret_service.search()    # items stored under service=exalsius_cli

Every test in this directory gets the `e2e` marker. With CI=true a missing prerequisite
(node, npm, chromium, chromedriver, gnome-keyring-daemon, dbus-daemon, secret-tool, Python
packages) fails the test; elsewhere it skips with the reason.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from exls_testbed.prereq import missing, require_module, require_tool

if TYPE_CHECKING:  # imported lazily at run time, so a missing package skips/fails cleanly
    from exls_testbed.browser import Browser, Chromium
    from exls_testbed.cli import ExlsCli, Timings
    from exls_testbed.idp import IdpServer, TlsFiles
    from exls_testbed.secret_service import SecretService

E2E_DIR = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: end-to-end test against the real provider, keyring and browser"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


# -- OpenID provider ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def idp_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[TlsFiles, Path]:
    """The provider's TLS files and signing key: made once per run, shared by every instance."""
    require_module("trustme")
    from exls_testbed.idp import make_signing_key, make_tls_files

    directory = tmp_path_factory.mktemp("idp-files")
    return make_tls_files(directory / "tls"), make_signing_key(directory / "signing-key.json")


def _started_idp(workdir: Path, files: tuple[TlsFiles, Path]) -> IdpServer:
    node = require_tool("node")
    npm = require_tool("npm")
    from exls_testbed.idp import IdpError, IdpServer, ensure_node_modules

    server = IdpServer(node=node, tls=files[0], workdir=workdir, signing_key=files[1])
    try:
        ensure_node_modules(npm)
        server.start()
    except IdpError as exc:
        server.close()
        pytest.fail(str(exc), pytrace=False)
    return server


@pytest.fixture(scope="session")
def idp_server(
    tmp_path_factory: pytest.TempPathFactory, idp_files: tuple[TlsFiles, Path]
) -> Iterator[IdpServer]:
    """The provider process for the whole session (use the function-scoped `idp`)."""
    server = _started_idp(tmp_path_factory.mktemp("idp"), idp_files)
    _keep(server)
    yield server
    server.close()


def _keep(server: IdpServer) -> None:
    from testkit.leaks import keep_process

    assert server.pid is not None
    keep_process(server.pid, "the session's identity provider (idp_server)")


@pytest.fixture
def idp(idp_server: IdpServer) -> Iterator[IdpServer]:
    """The running provider with recorded events and runtime settings reset for this test.

    API (exls_testbed.idp.IdpServer): .issuer, .ca_path, .client_id, .exls_env(audience=""),
    .discovery(), .session() (requests, trusts the CA), .events(route=None, **params),
    .token_grants(grant_type=None, succeeded=None), .configure(**settings), .reset(),
    .lookup(token), .log(). Settings change at run time (configure); to restart a provider
    with other start-up settings, use `private_idp`.
    """
    if not idp_server.running:  # it crashed in an earlier test: that test failed already
        idp_server.start()
        _keep(idp_server)
    idp_server.reset()
    yield idp_server
    assert not idp_server.env, "restart() the private_idp, never the shared provider"


@pytest.fixture
def private_idp(tmp_path: Path, idp_files: tuple[TlsFiles, Path]) -> Iterator[IdpServer]:
    """A provider of this test's own (same CA and signing key), which it may restart()."""
    server = _started_idp(tmp_path / "private-idp", idp_files)
    yield server
    server.close()


# -- Secret Service -----------------------------------------------------------------------


@pytest.fixture
def secret_service(tmp_path: Path) -> Iterator[SecretService]:
    """A fresh private D-Bus session bus + unlocked gnome-keyring for this test.

    API (exls_testbed.secret_service.SecretService): .env (DBUS_SESSION_BUS_ADDRESS, HOME,
    XDG_*), .subprocess_env(*overlays) -> full env for subprocess, .search(service=
    "exalsius_cli", **attrs) -> [SecretItem(path, label, secret, attributes)],
    .secret_tool_search(), .lock(), .freeze()/.thaw() (hangs), .stop_keyring(),
    SecretService.unavailable_env(tmp_path).
    """
    from exls_testbed.secret_service import SecretService, SecretServiceError

    require_module("secretstorage")
    service = SecretService(
        root=tmp_path / "secret-service",
        dbus_daemon=require_tool("dbus-daemon"),
        keyring_daemon=require_tool("gnome-keyring-daemon"),
        secret_tool=require_tool("secret-tool"),
        dbus_send=require_tool("dbus-send"),
    )
    try:
        service.start()
    except SecretServiceError as exc:
        service.stop()
        missing(str(exc))
    yield service
    service.stop()


# -- Browser ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    """One headless Chromium for the session (use the function-scoped `browser`)."""
    binary = require_tool("chromium")
    driver_path = require_tool("chromedriver")
    require_module("selenium")
    from exls_testbed.browser import Chromium
    from selenium.common.exceptions import WebDriverException

    workdir = tmp_path_factory.mktemp("chromium")
    try:
        instance = Chromium(binary, driver_path, workdir / "profile", workdir / "chromedriver.log")
    except WebDriverException as exc:
        missing(f"headless Chromium did not start: {exc.msg}")
    yield instance
    instance.quit()


@pytest.fixture
def browser(chromium: Chromium, tmp_path: Path) -> Iterator[Browser]:
    """Plays the user in the shared Chromium.

    API (exls_testbed.browser.Browser): .handoff_command(login=..., deny=False, act=True) ->
    path for BROWSER, .handoff_env(...) -> {"BROWSER": path}, .wait_for_login(timeout) ->
    LoginResult(final_url, title, text, steps, query), .received_urls, .wait_for_url(),
    .complete_login(url, login=..., deny=False), .approve_device_code(verification_uri,
    user_code, login=..., deny=False), .screenshot(name).
    """
    from exls_testbed.browser import Browser

    instance = Browser(chromium, tmp_path / "browser")
    yield instance
    instance.close()


# -- the exls CLI under test --------------------------------------------------------------


@pytest.fixture
def exls(idp: IdpServer, secret_service: SecretService, tmp_path: Path) -> Iterator[ExlsCli]:
    """The installed `exls` console script (next to sys.executable), run as a subprocess.

    Its environment: this test's provider (idp.exls_env()), Secret Service, private HOME and
    XDG directories (XDG_STATE_HOME too), a private TMPDIR (`exls.tmpdir`) and CI=true; no
    DISPLAY, BROWSER, SSH_* or EXLS_* from the caller. API (exls_testbed.cli.ExlsCli):
    .run(*args, env={...: str | None}) -> Result, .start(...) -> ExlsProcess (.wait_for(),
    .device_code(), .finish()), .env(changes), .results (every finished command).
    """
    from exls_testbed.cli import EXLS, STEERING, ExlsCli

    if not EXLS.exists():
        missing(f"the exls console script is not installed next to {sys.executable}")
    tmpdir = tmp_path / "exls-tmp"
    tmpdir.mkdir()
    env = {
        key: value
        for key, value in secret_service.subprocess_env().items()
        if key not in STEERING and not key.startswith("EXLS_")
    }
    if "EXLS_KERNEL_KEY_SCOPE" in os.environ:  # this test's kernel keys (tests/conftest.py)
        env["EXLS_KERNEL_KEY_SCOPE"] = os.environ["EXLS_KERNEL_KEY_SCOPE"]
    env.update(idp.exls_env())
    env.update(
        CI="true",
        TMPDIR=str(tmpdir),
        XDG_STATE_HOME=str(secret_service.home / ".local/state"),
    )
    cli = ExlsCli(EXLS, env, tmpdir=tmpdir)
    yield cli
    cli.close()
    from testkit.agents import stop_agent_for

    stop_agent_for(cli.base_env)  # started as the token cache, in a container like this one


TIMINGS_KEY = pytest.StashKey["Timings"]()


@pytest.fixture(scope="session")
def e2e_timings(request: pytest.FixtureRequest) -> Timings:
    """Timings for the performance issue, never asserted: listed in the terminal summary and
    written as JSON to $EXLS_E2E_TIMINGS when that is set."""
    from exls_testbed.cli import Timings

    return request.config.stash.setdefault(TIMINGS_KEY, Timings())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    timings = terminalreporter.config.stash.get(TIMINGS_KEY, None)
    if timings is None or not timings.records:
        return
    terminalreporter.section("exls e2e timings (seconds, not asserted)")
    for line in timings.summary():
        terminalreporter.write_line(line)
    target = os.environ.get("EXLS_E2E_TIMINGS")
    if target:
        timings.write(Path(target))
        terminalreporter.write_line(f"written to {target}")
