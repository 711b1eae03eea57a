"""Opening the login URL without ever blocking the CLI.

``webbrowser`` honours BROWSER, but some launchers wait for the browser to exit and a broken
xdg-open can hang, so the call runs in a daemon thread and the flow only glances at it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping

from exls_flows_pkce.availability import browser_commands, is_wsl, read_proc_version, wsl_opener

Opener = Callable[[str], bool]


def open_url(
    url: str,
    *,
    environ: Mapping[str, str] | None = None,
    platform: str = sys.platform,
    proc_version: Callable[[], str] = read_proc_version,
) -> bool:
    """webbrowser.open, except in WSL: there the Windows default browser, started directly."""
    environ = os.environ if environ is None else environ
    names = browser_commands(environ.get("BROWSER", ""), platform)
    # explorer.exe exits with 1 even when it opened the URL, which webbrowser reads as failure.
    if names in ([], ["explorer"], ["wslview"]) and is_wsl(environ, platform, proc_version):
        program = wsl_opener(environ)
        if program:
            subprocess.Popen(
                [program, url],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            return True
    import webbrowser

    return webbrowser.open(url)


class Launch:
    """One attempt to open a URL, running in the background."""

    def __init__(self, opener: Opener, url: str) -> None:
        self._opened: bool | None = None
        self.done = threading.Event()
        thread = threading.Thread(
            target=self._run, args=(opener, url), name="exls-pkce-browser", daemon=True
        )
        thread.start()

    def _run(self, opener: Opener, url: str) -> None:
        try:
            self._opened = bool(opener(url))
        except Exception:  # webbrowser.Error, OSError: no browser could be started
            self._opened = False
        finally:
            self.done.set()

    @property
    def failed(self) -> bool:
        """True once the opener has reported that no browser could be started."""
        return self.done.is_set() and self._opened is False
