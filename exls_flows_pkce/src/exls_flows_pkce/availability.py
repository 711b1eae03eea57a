"""Can a graphical browser open here? Decided from the environment only: fast, launches nothing.

The checks mirror what Python's ``webbrowser`` would do, and the usual reasons a browser
login fails: CI, ``BROWSER=none`` or a text-mode browser (also behind Debian's
``www-browser``/``x-www-browser`` symlinks), SSH without a forwarded display, a container or
Linux without a display. WSL counts as available through the Windows browser. After
``--no-browser`` the flow prints its link instead, so only CI stops it.
"""

from __future__ import annotations

import ntpath
import os
import posixpath
import shlex
import shutil
from collections.abc import Callable, Mapping

from exls_core.plugin import (
    PRIORITY_PKCE,
    FlowAvailable,
    FlowEnvironment,
    FlowUnavailable,
    is_container,
)

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


NO_BROWSER = "No browser here"


def program_name(name: str, environ: Mapping[str, str]) -> str:
    """What ``name`` runs, through symlinks (Debian's www-browser -> /etc/alternatives -> lynx)."""
    path = _which(name, environ)
    target = os.path.realpath(path) if path else name
    return ntpath.basename(target).lower().removesuffix(".exe")


def is_text_browser(name: str, environ: Mapping[str, str]) -> bool:
    """By what the name runs; Debian's www-browser that is not installed counts as text."""
    return program_name(name, environ) in TEXT_BROWSERS


def priority(
    env: FlowEnvironment,
    *,
    proc_version: Callable[[], str] = read_proc_version,
    exists: Callable[[str], bool] = os.path.exists,
) -> FlowAvailable:
    """Why a browser login can work here, or FlowUnavailable("No browser here (why not)")."""
    environ = env.environ
    if environ.get("CI", "").strip().lower() not in FALSE_VALUES:
        raise FlowUnavailable(f"{NO_BROWSER} (CI is set: nobody is at a browser)")
    if not env.launch_browser:
        return FlowAvailable(
            PRIORITY_PKCE, "it prints the sign-in link for any browser (--no-browser)"
        )

    browser = environ.get("BROWSER", "").strip()
    if browser:
        names = browser_commands(browser, env.platform)
        if "none" in names:
            raise FlowUnavailable(f"{NO_BROWSER} (BROWSER is set to none)")
        if names and all(is_text_browser(name, environ) for name in names):
            raise FlowUnavailable(f"{NO_BROWSER} (BROWSER={names[0]} is a text-mode browser)")
        if names:  # an explicit command: the user knows it opens somewhere useful
            return FlowAvailable(PRIORITY_PKCE, f"BROWSER is set ({names[0]})")

    display = bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))
    ssh = any(environ.get(name) for name in SSH_VARIABLES)
    if not display and ssh:
        raise FlowUnavailable(f"{NO_BROWSER} (SSH session without a forwarded display)")
    if env.platform == "darwin":
        return FlowAvailable(PRIORITY_PKCE, "macOS opens your default browser")
    if env.platform == "win32":
        return FlowAvailable(PRIORITY_PKCE, "Windows opens your default browser")
    if is_wsl(environ, env.platform, proc_version):
        opener = wsl_opener(environ)
        if opener:
            name = ntpath.basename(opener)
            return FlowAvailable(PRIORITY_PKCE, f"WSL: the Windows browser, through {name}")
        if not display:
            raise FlowUnavailable(
                f"{NO_BROWSER} (WSL without wslview or explorer.exe on PATH, and no display)"
            )
    if not display:
        where = "a container without a display" if is_container(environ, exists) else "no display"
        raise FlowUnavailable(
            f"{NO_BROWSER} ({where}: DISPLAY and WAYLAND_DISPLAY unset, no BROWSER)"
        )
    found = [name for name in GRAPHICAL_BROWSERS if _which(name, environ)]
    graphical = [name for name in found if not is_text_browser(name, environ)]
    if graphical:
        which = "a forwarded display" if ssh else "a display"
        return FlowAvailable(PRIORITY_PKCE, f"{which} and {graphical[0]}")
    if found:
        text = f"{found[0]} is {program_name(found[0], environ)}"
        raise FlowUnavailable(f"{NO_BROWSER} (a display, but only text-mode browsers: {text})")
    raise FlowUnavailable(
        f"{NO_BROWSER} (a display, but no graphical browser on PATH such as xdg-open; set BROWSER)"
    )


def _which(name: str, environ: Mapping[str, str]) -> str | None:
    return shutil.which(name, path=environ.get("PATH", os.defpath))
