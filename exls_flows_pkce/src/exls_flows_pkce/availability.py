"""Can a graphical browser open here? Decided from the environment only: fast, launches nothing.

The checks mirror what Python's ``webbrowser`` would do, and the usual reasons a browser
login fails: CI, ``BROWSER=none`` or a text-mode browser, SSH without a forwarded display,
Linux without a display. WSL counts as available through the Windows browser.
"""

from __future__ import annotations

import ntpath
import os
import posixpath
import shlex
import shutil
from collections.abc import Callable, Mapping

from exls_core.plugin import PRIORITY_PKCE, FlowEnvironment, FlowUnavailable

TEXT_BROWSERS = frozenset({"lynx", "w3m", "links", "links2", "elinks", "www-browser", "browsh"})
# What webbrowser tries on X11/Wayland; at least one must be on PATH.
GRAPHICAL_BROWSERS = (
    "xdg-open",
    "gio",
    "gvfs-open",
    "x-www-browser",
    "firefox",
    "iceweasel",
    "seamonkey",
    "google-chrome",
    "chrome",
    "chromium",
    "chromium-browser",
    "epiphany",
    "konqueror",
    "kfmclient",
    "opera",
)
WSL_OPENERS = ("wslview", "explorer.exe")
SSH_VARIABLES = ("SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY")
FALSE_VALUES = frozenset({"", "0", "false", "no", "off"})


def read_proc_version() -> str:
    try:
        with open("/proc/version", encoding="utf-8", errors="replace") as file:
            return file.read(1024)
    except OSError:
        return ""


def is_wsl(
    environ: Mapping[str, str], platform: str, proc_version: Callable[[], str] = read_proc_version
) -> bool:
    if platform != "linux":
        return False
    if environ.get("WSL_DISTRO_NAME") or environ.get("WSL_INTEROP"):
        return True
    return "microsoft" in proc_version().lower()


def wsl_opener(environ: Mapping[str, str]) -> str | None:
    """The first of wslview / explorer.exe on PATH: they open the Windows default browser."""
    return next((p for name in WSL_OPENERS if (p := _which(name, environ))), None)


def browser_commands(value: str, platform: str) -> list[str]:
    """Program names in a BROWSER value (a path-separator list of command lines)."""
    windows = platform == "win32"
    names = []
    for entry in value.split(";" if windows else ":"):
        try:
            words = shlex.split(entry, posix=not windows)
        except ValueError:
            words = entry.split()
        if words:
            name = (ntpath if windows else posixpath).basename(words[0].strip("\"'")).lower()
            names.append(name.removesuffix(".exe"))
    return names


def priority(env: FlowEnvironment, *, proc_version: Callable[[], str] = read_proc_version) -> float:
    """PRIORITY_PKCE when a graphical browser can open, else FlowUnavailable(why not)."""
    environ = env.environ
    if environ.get("CI", "").strip().lower() not in FALSE_VALUES:
        raise FlowUnavailable("CI is set (nobody is at a browser)")

    browser = environ.get("BROWSER", "").strip()
    if browser:
        names = browser_commands(browser, env.platform)
        if "none" in names:
            raise FlowUnavailable("BROWSER is set to none")
        if names and all(name in TEXT_BROWSERS for name in names):
            raise FlowUnavailable(f"BROWSER={names[0]} is a text-mode browser")
        if names:
            return PRIORITY_PKCE  # an explicit command: the user knows it opens somewhere useful

    display = bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))
    if not display and any(environ.get(name) for name in SSH_VARIABLES):
        raise FlowUnavailable("SSH session without a forwarded display (set BROWSER to override)")
    if env.platform in ("darwin", "win32"):
        return PRIORITY_PKCE
    if is_wsl(environ, env.platform, proc_version):
        if wsl_opener(environ):
            return PRIORITY_PKCE
        if not display:
            raise FlowUnavailable("WSL without wslview or explorer.exe on PATH, and no display")
    if not display:
        raise FlowUnavailable("no display (DISPLAY/WAYLAND_DISPLAY unset) and no BROWSER set")
    if not any(_which(name, environ) for name in GRAPHICAL_BROWSERS):
        raise FlowUnavailable("no graphical browser on PATH (e.g. xdg-open); set BROWSER")
    return PRIORITY_PKCE


def _which(name: str, environ: Mapping[str, str]) -> str | None:
    return shutil.which(name, path=environ.get("PATH", os.defpath))
