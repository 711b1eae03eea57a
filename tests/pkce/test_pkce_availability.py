"""Where a browser login can work: the availability matrix, from fake environments only."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from exls_core.plugin import PRIORITY_PKCE, FlowEnvironment, FlowUnavailable
from exls_flows_pkce import plugin
from exls_flows_pkce.availability import browser_commands, is_wsl, priority

OK = None  # expected: available
X11 = {"DISPLAY": ":0"}
SSH = {"SSH_CONNECTION": "10.0.0.2 50000 10.0.0.1 22", "SSH_TTY": "/dev/pts/1"}

# (case, platform, environ, programs on PATH, /proc/version, expected reason fragment or OK)
MATRIX = [
    ("macOS", "darwin", {}, [], "", OK),
    ("Windows", "win32", {}, [], "", OK),
    ("Linux X11 with xdg-open", "linux", X11, ["xdg-open"], "", OK),
    ("Linux Wayland with firefox", "linux", {"WAYLAND_DISPLAY": "wayland-0"}, ["firefox"], "", OK),
    ("FreeBSD X11", "freebsd14", X11, ["chromium"], "", OK),
    (
        "Linux, no display",
        "linux",
        {},
        ["xdg-open"],
        "",
        "no display (DISPLAY/WAYLAND_DISPLAY unset)",
    ),
    ("FreeBSD, no display", "freebsd14", {}, ["firefox"], "", "no display"),
    (
        "Linux display, text browsers only",
        "linux",
        X11,
        ["lynx", "w3m"],
        "",
        "no graphical browser",
    ),
    ("Linux display, nothing on PATH", "linux", X11, [], "", "no graphical browser"),
    ("BROWSER=none on macOS", "darwin", {"BROWSER": "none"}, [], "", "BROWSER is set to none"),
    ("BROWSER=none with display", "linux", X11 | {"BROWSER": "none"}, ["xdg-open"], "", "none"),
    ("BROWSER=lynx", "linux", X11 | {"BROWSER": "lynx"}, ["xdg-open"], "", "text-mode browser"),
    ("BROWSER=w3m with args", "darwin", {"BROWSER": "/usr/bin/w3m -o x=1 %s"}, [], "", "text-mode"),
    ("BROWSER=links:elinks", "linux", {"BROWSER": "links:elinks"}, [], "", "text-mode"),
    ("BROWSER=www-browser", "linux", {"BROWSER": "www-browser"}, [], "", "text-mode"),
    ("BROWSER=lynx:firefox", "linux", {"BROWSER": "lynx:firefox"}, [], "", OK),
    ("BROWSER on headless Linux", "linux", {"BROWSER": "/opt/open-url.sh"}, [], "", OK),
    (
        "BROWSER over SSH (VS Code)",
        "linux",
        SSH | {"BROWSER": "/home/a/.vscode/browser.sh"},
        [],
        "",
        OK,
    ),
    ("BROWSER Windows list", "win32", {"BROWSER": r"C:\Tools\lynx.exe;C:\w3m.exe"}, [], "", "text"),
    (
        "SSH without display",
        "linux",
        SSH,
        ["xdg-open"],
        "",
        "SSH session without a forwarded display",
    ),
    ("SSH_CLIENT only", "linux", {"SSH_CLIENT": "10.0.0.2 50000 22"}, [], "", "SSH session"),
    ("SSH into a Mac", "darwin", SSH, [], "", "SSH session"),
    ("SSH into Windows", "win32", SSH, [], "", "SSH session"),
    ("SSH with X11 forwarding", "linux", SSH | {"DISPLAY": "localhost:10.0"}, ["firefox"], "", OK),
    ("CI=true", "darwin", {"CI": "true"}, [], "", "CI is set"),
    (
        "CI=1 beats BROWSER",
        "linux",
        X11 | {"CI": "1", "BROWSER": "firefox"},
        ["xdg-open"],
        "",
        "CI",
    ),
    ("CI=false", "darwin", {"CI": "false"}, [], "", OK),
    ("CI empty", "darwin", {"CI": ""}, [], "", OK),
    ("WSL env, wslview", "linux", {"WSL_DISTRO_NAME": "Ubuntu"}, ["wslview"], "", OK),
    ("WSL interop, explorer.exe", "linux", {"WSL_INTEROP": "/run/x"}, ["explorer.exe"], "", OK),
    ("WSL by /proc/version", "linux", {}, ["explorer.exe"], "5.15.1-microsoft-standard-WSL2", OK),
    ("WSL without openers", "linux", {"WSL_DISTRO_NAME": "Ubuntu"}, [], "", "WSL without wslview"),
    ("WSLg without openers", "linux", {"WSL_DISTRO_NAME": "U"} | X11, ["firefox"], "", OK),
    ("Linux that is not WSL", "linux", {}, ["explorer.exe"], "Linux 6.1 (debian)", "no display"),
]


def make_path(tmp_path: Path, programs: list[str]) -> str:
    for name in programs:
        program = tmp_path / name
        program.write_text("#!/bin/sh\n")
        program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return str(tmp_path)


@pytest.mark.parametrize(
    ("platform", "environ", "programs", "proc_version", "expected"),
    [case[1:] for case in MATRIX],
    ids=[case[0] for case in MATRIX],
)
def test_availability_matrix(
    tmp_path: Path,
    platform: str,
    environ: dict[str, str],
    programs: list[str],
    proc_version: str,
    expected: str | None,
) -> None:
    env = FlowEnvironment(
        environ={"PATH": make_path(tmp_path, programs), **environ},
        platform=platform,
        stdin_is_terminal=True,
        stderr_is_terminal=True,
    )
    if expected is OK:
        assert priority(env, proc_version=lambda: proc_version) == PRIORITY_PKCE
    else:
        with pytest.raises(FlowUnavailable, match=re.escape(expected)):
            priority(env, proc_version=lambda: proc_version)


def test_the_check_ignores_the_real_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("BROWSER", "none")
    env = FlowEnvironment(
        environ={}, platform="darwin", stdin_is_terminal=False, stderr_is_terminal=False
    )
    assert priority(env, proc_version=lambda: "") == PRIORITY_PKCE


def test_the_plugin_hooks() -> None:
    env = FlowEnvironment(
        environ={}, platform="win32", stdin_is_terminal=True, stderr_is_terminal=True
    )
    assert plugin.exls_flow_priority(env) == PRIORITY_PKCE
    assert plugin.exls_flow_title() == "browser flow (PKCE)"
    ci = FlowEnvironment({"CI": "yes"}, "win32", True, True)
    with pytest.raises(FlowUnavailable, match="CI"):
        plugin.exls_flow_priority(ci)


@pytest.mark.parametrize(
    ("value", "platform", "names"),
    [
        ("firefox", "linux", ["firefox"]),
        ("lynx:/usr/bin/w3m %s", "linux", ["lynx", "w3m"]),
        ("'/opt/My Browser/run' --new-tab %s", "linux", ["run"]),
        ("::", "linux", []),
        ('"C:\\Program Files\\Firefox\\firefox.exe" %s;lynx', "win32", ["firefox", "lynx"]),
        ("unbalanced 'quote", "linux", ["unbalanced"]),
    ],
)
def test_browser_commands(value: str, platform: str, names: list[str]) -> None:
    assert browser_commands(value, platform) == names


def test_wsl_detection_is_linux_only() -> None:
    assert not is_wsl({"WSL_DISTRO_NAME": "Ubuntu"}, "win32", lambda: "microsoft")
    assert is_wsl({}, "linux", lambda: "Linux version 5.15 (Microsoft@Microsoft.com)")


def test_the_plugin_module_is_cheap_to_import() -> None:
    import subprocess
    import sys

    code = (
        "import sys, exls_flows_pkce.plugin;"
        "heavy = {'requests', 'requests_oauthlib', 'oauthlib', 'rich', 'webbrowser',"
        " 'socketserver', 'http.server'};"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ),
    )
    assert out.stdout.strip() == "[]"
