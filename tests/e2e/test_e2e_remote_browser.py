"""The browser somewhere else (issue 16), end to end: the installed CLI, the real provider,
Secret Service and headless Chromium acting as a browser on another machine, whose redirect to
the loopback address is held back by DevTools request interception. The only way to finish
is pasting the address it ended on into exls's stdin (or, with stdin closed, the redirect)."""

from __future__ import annotations

import re
import socket
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from exls_testbed.cli import LOGGED_IN, ExlsCli, ExlsProcess, secrets_snapshot, stored_session
from exls_testbed.idp import IdpServer
from exls_testbed.secret_service import SecretService

if TYPE_CHECKING:
    from exls_testbed.browser import Browser

EMAIL = "alice@example.com"
SSH = {"SSH_CONNECTION": "10.0.0.2 50000 10.0.0.1 22", "SSH_TTY": "/dev/pts/3"}
PROMPT = "Paste the address here and press Enter:"
REFUSED = re.compile(r"^Refused: ")


def the_link(proc: ExlsProcess, idp: IdpServer) -> str:
    """The sign-in link exls printed on its own line."""
    return proc.wait_for("^" + re.escape(idp.issuer.rstrip("/")) + r"/\S+$").group(0)


def forward_port_line(proc: ExlsProcess) -> int:
    match = proc.wait_for(r"forward port (\d+) first \(ssh -L (\d+):127\.0\.0\.1:(\d+) ")
    ports = {int(match.group(n)) for n in (1, 2, 3)}
    assert len(ports) == 1, match.group(0)
    return ports.pop()


def with_query(address: str, **changes: str) -> str:
    parts = urlsplit(address)
    query = dict(parse_qsl(parts.query)) | changes
    return parts._replace(query=urlencode(query)).geturl()


def start_no_browser(exls: ExlsCli, *flow: str, env: dict[str, str | None]) -> ExlsProcess:
    return exls.start(
        "login", "--no-browser", *flow, "--email", EMAIL, env=env, keep_stdin_open=True
    )


def paste_and_finish(exls: ExlsCli, proc: ExlsProcess, address: str) -> None:
    proc.type(address)
    result = exls.finish(proc)
    assert result.returncode == 0, result.describe()
    assert f"Logged in as {EMAIL}" in result.stderr
    assert address not in result.output  # the code is never printed back


@pytest.mark.parametrize("how", ["auto-over-ssh", "explicit-pkce"])
def test_no_browser_signs_in_by_pasting_the_address_the_browser_ended_on(
    how: str, idp: IdpServer, exls: ExlsCli, browser: Browser, secret_service: SecretService
) -> None:
    idp.configure(skip_consent=True)
    if how == "auto-over-ssh":  # auto, where PKCE would be unavailable without --no-browser
        env: dict[str, str | None] = {"CI": None, **SSH}
        proc = start_no_browser(exls, env=env)
        why = "Using the browser flow (PKCE): it prints the sign-in link for any browser "
        why += "(--no-browser)."
    else:  # named explicitly it runs even under CI=true
        env = {}
        proc = start_no_browser(exls, "--auth-flow", "pkce", env=env)
        why = "Using the browser flow (PKCE), as requested, although: No browser here "
        why += "(CI is set: nobody is at a browser)."
    proc.wait_for("^" + re.escape(why) + "$")
    proc.wait_for(r"^Not opening a browser here \(--no-browser\)\. Open this link")
    link = the_link(proc, idp)
    port = forward_port_line(proc)
    proc.wait_for("^" + re.escape(PROMPT))

    address = browser.sign_in_elsewhere(link, EMAIL)
    assert address.startswith(f"http://127.0.0.1:{port}/callback?")
    assert dict(parse_qsl(urlsplit(address).query)).get("code")
    assert idp.events("resume")  # the provider redirected the browser...
    assert proc.running() and not proc.count(LOGGED_IN)  # ...but nothing reached exls
    assert browser.received_urls == []  # and exls launched no browser

    paste_and_finish(exls, proc, address)
    (exchange,) = idp.token_grants("authorization_code")
    assert exchange["status"] == 200
    assert exchange["params"]["redirect_uri"] == f"http://127.0.0.1:{port}/callback"
    session = stored_session(secret_service.search())
    assert session is not None and session["flow"] == "pkce" and session["email"] == EMAIL


def test_forged_stale_and_foreign_pastes_are_refused_and_the_prompt_stays(
    idp: IdpServer, exls: ExlsCli, browser: Browser, secret_service: SecretService
) -> None:
    idp.configure(skip_consent=True)
    with socket.socket() as probe:  # one pinned port, as in the SSH recipe
        probe.bind(("127.0.0.1", 0))
        pinned = {"EXLS_AUTH_CALLBACK_PORTS": str(probe.getsockname()[1])}
    first = start_no_browser(exls, "--auth-flow", "pkce", env=pinned)
    stale = browser.sign_in_elsewhere(the_link(first, idp), EMAIL)
    paste_and_finish(exls, first, stale)

    proc = start_no_browser(exls, "--auth-flow", "pkce", env=pinned)
    link = the_link(proc, idp)
    port = forward_port_line(proc)
    assert str(port) == pinned["EXLS_AUTH_CALLBACK_PORTS"] and f":{port}/" in stale
    address = browser.sign_in_elsewhere(link, EMAIL, fresh_session=False)  # provider session
    other_port = port + 1 if port < 65535 else port - 1
    attempts = [
        ("forged", with_query(address, state="forged-state-0123456789")),
        ("stale", stale),  # a real address of the earlier login
        ("foreign", address.replace(f"127.0.0.1:{port}/", f"127.0.0.1:{other_port}/", 1)),
        ("foreign-host", address.replace("127.0.0.1", "attacker.example", 1)),
        ("wrong path", address.replace("/callback?", "/elsewhere?", 1)),
    ]
    for number, (_name, attempt) in enumerate(attempts, 1):
        proc.type(attempt)
        proc.wait_for(REFUSED, nth=number)  # one line each; exls keeps waiting
        assert proc.running()
    refusals = [line for line in proc.text("stderr").splitlines() if REFUSED.search(line)]
    assert "(state mismatch)" in refusals[0] and "(state mismatch)" in refusals[1]
    assert all("not this login's address" in line for line in refusals[2:])
    assert all(line.endswith(PROMPT) for line in refusals)
    assert len(idp.token_grants("authorization_code")) == 1  # only the first login's

    paste_and_finish(exls, proc, address)
    assert len(idp.token_grants("authorization_code", succeeded=True)) == 2


def test_explicit_pkce_whose_browser_cannot_open_prints_the_link_and_takes_a_paste(
    idp: IdpServer, exls: ExlsCli, browser: Browser, secret_service: SecretService
) -> None:
    idp.configure(skip_consent=True)
    proc = exls.start(
        "login",
        "--auth-flow",
        "pkce",
        "--email",
        EMAIL,
        env={"BROWSER": "false"},  # a launcher that fails: webbrowser reports it
        keep_stdin_open=True,
    )
    proc.wait_for(r"^Could not open a browser here\. Open this link in a browser")
    address = browser.sign_in_elsewhere(the_link(proc, idp), EMAIL)
    paste_and_finish(exls, proc, address)


def test_with_stdin_closed_only_the_redirect_counts(
    idp: IdpServer, exls: ExlsCli, browser: Browser, secret_service: SecretService
) -> None:
    """--no-browser with nobody at stdin (as with ssh -L forwarding the port): no prompt;
    the browser's redirect reaches the listener."""
    idp.configure(skip_consent=True)
    proc = exls.start("login", "--no-browser", "--auth-flow", "pkce", "--email", EMAIL)
    link = the_link(proc, idp)
    forward_port_line(proc)
    seen = browser.complete_login(link, EMAIL)  # not held: the port is "forwarded"
    result = exls.finish(proc)
    assert result.returncode == 0, result.describe()
    assert "You are signed in" in seen.text
    assert PROMPT not in result.stderr and "copy the address" not in result.stderr


def test_ctrl_c_at_the_prompt_exits_130_and_keeps_the_session(
    idp: IdpServer, exls: ExlsCli, browser: Browser, secret_service: SecretService
) -> None:
    idp.configure(skip_consent=True)
    before = secrets_snapshot(secret_service.search())
    proc = start_no_browser(exls, "--auth-flow", "pkce", env={})
    proc.wait_for("^" + re.escape(PROMPT))
    proc.interrupt()
    result = exls.finish(proc)
    assert result.returncode == 130, result.describe()
    assert "Traceback" not in result.output
    assert secrets_snapshot(secret_service.search()) == before


def test_the_timeout_still_applies_at_the_prompt(
    idp: IdpServer, exls: ExlsCli, secret_service: SecretService
) -> None:
    proc = start_no_browser(exls, "--auth-flow", "pkce", env={"EXLS_AUTH_PKCE_TIMEOUT": "2"})
    proc.wait_for("^" + re.escape(PROMPT))
    proc.wait_for(r"^Error: ", timeout=60)  # stdin stays open: the prompt is still there
    result = exls.finish(proc)
    assert result.returncode == 1, result.describe()
    lines = result.stderr.splitlines()
    assert "Error: Browser authentication timed out." in lines
    assert any("no address was pasted in time" in line for line in lines)


def test_over_ssh_auto_says_why_it_uses_the_device_code(
    idp: IdpServer, exls: ExlsCli, browser: Browser, secret_service: SecretService
) -> None:
    idp.configure(skip_consent=True, device_interval=1)
    ssh = {"CI": None, **SSH}
    reason = "No browser here (SSH session without a forwarded display)"
    flows = exls.run("auth", "flows", env=ssh)
    assert flows.returncode == 0, flows.describe()
    assert f"unavailable: {reason}" in flows.stdout
    listed = exls.run("auth", "flows", "--json", env=ssh).json()
    assert next(r for r in listed["flows"] if r["id"] == "pkce")["reason"] == reason

    proc = exls.start("login", "--email", EMAIL, env=ssh)
    proc.wait_for("^" + re.escape(f"{reason}: using the device code flow.") + "$")
    uri, code = proc.device_code()
    browser.approve_device_code(uri, code, EMAIL)
    result = exls.finish(proc)
    assert result.returncode == 0, result.describe()
    assert idp.events("authorization") == []  # no browser flow was tried
