"""Where a browser login can work: the availability matrix, from fake environments only."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from exls_core.plugin import PRIORITY_PKCE, FlowEnvironment, FlowUnavailable
from exls_flows_pkce import plugin
from exls_flows_pkce.availability import browser_commands, is_container, is_wsl, priority

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
        "No browser here (no display: DISPLAY and WAYLAND_DISPLAY unset, no BROWSER)",
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
    probes = {"proc_version": lambda: proc_version, "exists": lambda path: False}
    if expected is OK:
        assert priority(env, **probes).priority == PRIORITY_PKCE
    else:
        with pytest.raises(FlowUnavailable, match=re.escape(expected)) as info:
            priority(env, **probes)
        assert str(info.value).startswith("No browser here (")


def test_the_check_ignores_the_real_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("BROWSER", "none")
    env = FlowEnvironment(
        environ={}, platform="darwin", stdin_is_terminal=False, stderr_is_terminal=False
    )
    assert priority(env, proc_version=lambda: "").priority == PRIORITY_PKCE


def test_the_plugin_hooks() -> None:
    env = FlowEnvironment(
        environ={}, platform="win32", stdin_is_terminal=True, stderr_is_terminal=True
    )
    assert plugin.exls_flow_priority(env).priority == PRIORITY_PKCE
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


def env_of(tmp_path: Path, environ: dict[str, str], platform: str = "linux", **kw: bool) -> Any:
    return FlowEnvironment(
        environ={"PATH": str(tmp_path), **environ},
        platform=platform,
        stdin_is_terminal=True,
        stderr_is_terminal=True,
        **kw,
    )


@pytest.mark.parametrize(
    ("platform", "environ", "programs", "proc_version", "reason"),
    [
        ("darwin", {}, [], "", "macOS opens your default browser"),
        ("win32", {}, [], "", "Windows opens your default browser"),
        ("linux", X11, ["xdg-open"], "", "a display and xdg-open"),
        (
            "linux",
            SSH | {"DISPLAY": "localhost:10.0"},
            ["firefox"],
            "",
            "a forwarded display and firefox",
        ),
        ("linux", {"BROWSER": "/opt/open-url.sh %s"}, [], "", "BROWSER is set (open-url.sh)"),
        (
            "linux",
            {"WSL_DISTRO_NAME": "Ubuntu"},
            ["wslview"],
            "",
            "WSL: the Windows browser, through wslview",
        ),
        (
            "linux",
            {},
            ["explorer.exe"],
            "microsoft-standard-WSL2",
            "WSL: the Windows browser, through explorer.exe",
        ),
    ],
)
def test_an_available_browser_says_why(
    tmp_path: Path,
    platform: str,
    environ: dict[str, str],
    programs: list[str],
    proc_version: str,
    reason: str,
) -> None:
    make_path(tmp_path, programs)
    available = priority(
        env_of(tmp_path, environ, platform),
        proc_version=lambda: proc_version,
        exists=lambda p: False,
    )
    assert (available.priority, available.reason) == (PRIORITY_PKCE, reason)


@pytest.mark.parametrize(
    ("environ", "files"),
    [
        ({}, ["/.dockerenv"]),
        ({}, ["/run/.containerenv"]),
        ({"container": "podman"}, []),
        ({"container": "systemd-nspawn"}, []),
        ({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, []),
    ],
)
def test_a_container_without_a_display(
    tmp_path: Path, environ: dict[str, str], files: list[str]
) -> None:
    make_path(tmp_path, ["xdg-open"])
    with pytest.raises(FlowUnavailable) as info:
        priority(env_of(tmp_path, environ), proc_version=lambda: "", exists=files.__contains__)
    assert str(info.value) == (
        "No browser here (a container without a display: DISPLAY and WAYLAND_DISPLAY unset, "
        "no BROWSER)"
    )
    assert not is_container({}, exists=lambda path: False)


def test_a_container_with_a_display_can_open_a_browser(tmp_path: Path) -> None:
    make_path(tmp_path, ["firefox"])
    env = env_of(tmp_path, X11 | {"container": "docker"})
    assert priority(env, proc_version=lambda: "", exists=lambda p: True).priority == PRIORITY_PKCE


def alternative(tmp_path: Path, name: str, target: str) -> None:
    """Debian's alternatives: /usr/bin/NAME -> /etc/alternatives/NAME -> the real program."""
    real = tmp_path / "real"
    real.mkdir(exist_ok=True)
    program = real / target
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    (tmp_path / "alternatives").mkdir(exist_ok=True)
    link = tmp_path / "alternatives" / name
    link.symlink_to(program)
    (tmp_path / name).symlink_to(link)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("lynx", "No browser here (BROWSER=www-browser is a text-mode browser)"),
        ("w3m", "No browser here (BROWSER=www-browser is a text-mode browser)"),
        ("firefox-esr", OK),
    ],
)
def test_browser_pointing_through_www_browser(
    tmp_path: Path, target: str, expected: str | None
) -> None:
    alternative(tmp_path, "www-browser", target)
    env = env_of(tmp_path, {"BROWSER": "www-browser"})
    if expected is OK:
        assert priority(env, proc_version=lambda: "").reason == "BROWSER is set (www-browser)"
    else:
        with pytest.raises(FlowUnavailable, match=re.escape(expected)):
            priority(env, proc_version=lambda: "")


def test_x_www_browser_pointing_at_a_text_browser_is_not_graphical(tmp_path: Path) -> None:
    alternative(tmp_path, "x-www-browser", "w3m")
    with pytest.raises(FlowUnavailable) as info:
        priority(env_of(tmp_path, X11), proc_version=lambda: "")
    assert str(info.value) == (
        "No browser here (a display, but only text-mode browsers: x-www-browser is w3m)"
    )
    alternative(tmp_path, "gio", "gio")  # a real opener next to it wins
    assert priority(env_of(tmp_path, X11), proc_version=lambda: "").reason == "a display and gio"


@pytest.mark.parametrize(
    "environ", [{}, SSH, {"BROWSER": "none"}, {"BROWSER": "lynx"}, {"container": "docker"}]
)
def test_no_browser_needs_no_browser_here(tmp_path: Path, environ: dict[str, str]) -> None:
    env = env_of(tmp_path, environ, launch_browser=False)
    available = priority(env, proc_version=lambda: "", exists=lambda p: False)
    assert available.priority == PRIORITY_PKCE
    assert available.reason == "it prints the sign-in link for any browser (--no-browser)"


def test_no_browser_still_respects_ci(tmp_path: Path) -> None:
    with pytest.raises(FlowUnavailable, match=re.escape("No browser here (CI is set")):
        priority(env_of(tmp_path, {"CI": "true"}, launch_browser=False))
