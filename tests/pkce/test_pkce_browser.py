"""Opening the browser: webbrowser (BROWSER honoured), the Windows browser in WSL, no blocking."""

from __future__ import annotations

import stat
import threading
import time
import webbrowser
from pathlib import Path

import pytest

from exls_flows_pkce.browser import Launch, open_url

URL = "https://idp.test/authorize?state=abc&scope=openid%20email"


def fake_program(folder: Path, name: str, log: Path) -> None:
    """A shell script standing in for wslview / explorer.exe: it records its argument."""
    program = folder / name
    program.write_text(f'#!/bin/sh\nprintf "%s" "$1" > "{log}"\n')
    program.chmod(program.stat().st_mode | stat.S_IXUSR)


def wait_for(path: Path) -> str:
    deadline = time.monotonic() + 60  # generous: the machine may be busy
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError(f"{path} was never written")


@pytest.mark.parametrize("browser", [None, "explorer.exe", "wslview"])
@pytest.mark.parametrize("program", ["wslview", "explorer.exe"])
def test_wsl_opens_the_windows_browser_directly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, program: str, browser: str | None
) -> None:
    log = tmp_path / "opened"
    fake_program(tmp_path, program, log)
    monkeypatch.setattr(webbrowser, "open", lambda url: pytest.fail("webbrowser was used"))
    environ = {"PATH": str(tmp_path), "WSL_DISTRO_NAME": "Ubuntu"}
    if browser:
        environ["BROWSER"] = browser
    assert open_url(URL, environ=environ, platform="linux", proc_version=lambda: "")
    assert wait_for(log) == URL  # one argument, untouched by any shell


@pytest.mark.parametrize(
    ("environ", "proc_version"),
    [
        ({}, "Linux version 6.1 (debian)"),  # not WSL
        ({"WSL_DISTRO_NAME": "Ubuntu", "BROWSER": "firefox"}, ""),  # WSL with a chosen browser
        ({"WSL_DISTRO_NAME": "Ubuntu"}, ""),  # WSL without wslview or explorer.exe
    ],
)
def test_otherwise_webbrowser_opens_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], proc_version: str
) -> None:
    opened: list[str] = []

    def fake_open(url: str) -> bool:
        opened.append(url)
        return True

    monkeypatch.setattr(webbrowser, "open", fake_open)
    environ = {"PATH": str(tmp_path), **environ}
    assert open_url(URL, environ=environ, platform="linux", proc_version=lambda: proc_version)
    assert opened == [URL]


def test_webbrowser_failure_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webbrowser, "open", lambda url: False)
    assert open_url(URL, environ={}, platform="darwin") is False


def test_launch_never_blocks_and_reports_failure_only_when_known() -> None:
    release = threading.Event()
    returned = threading.Event()
    result = {"value": False}

    def hung(url: str) -> bool:
        release.wait(60)
        returned.set()
        return result["value"]

    launch = Launch(hung, URL)
    assert not returned.is_set()  # Launch came back while the launcher still hung
    assert not launch.failed  # still running: not a failure yet
    release.set()
    assert launch.done.wait(60) and launch.failed


@pytest.mark.parametrize("error", [webbrowser.Error("no browser"), OSError(2, "ENOENT")])
def test_launch_turns_errors_into_failure(error: Exception) -> None:
    def broken(url: str) -> bool:
        raise error

    launch = Launch(broken, URL)
    assert launch.done.wait(60) and launch.failed


def test_launch_success_is_not_failure() -> None:
    launch = Launch(lambda url: True, URL)
    assert launch.done.wait(60) and not launch.failed
