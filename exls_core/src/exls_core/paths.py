"""Where exls keeps its non-secret files. Tokens never go here: they live in the keyring.

On Linux and the BSDs the XDG variables are read directly (what platformdirs would answer):
these paths are needed on the start-up path, and importing platformdirs there costs more
than the lookup itself. macOS and Windows ask platformdirs.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # as typing's (mypy reads it so); importing typing costs auth token

if TYPE_CHECKING:
    from pathlib import Path

APP = "exalsius"
_XDG = {
    "config": ("XDG_CONFIG_HOME", ".config"),
    "cache": ("XDG_CACHE_HOME", ".cache"),
    "state": ("XDG_STATE_HOME", ".local/state"),
}


def user_dir(kind: str) -> str:
    """The user's ``config``, ``cache`` or ``state`` directory for exls, as a string.

    Strings, not Path: the entry-point index needs this on the start-up path, without pathlib.
    """
    if sys.platform not in ("darwin", "win32"):
        variable, fallback = _XDG[kind]
        base = os.environ.get(variable, "").strip()
        root = (
            base
            if base and os.path.isabs(base)
            else os.path.join(os.path.expanduser("~"), fallback)
        )
        return os.path.join(root, APP)
    import platformdirs

    finder = {
        "config": platformdirs.user_config_dir,
        "cache": platformdirs.user_cache_dir,
        "state": platformdirs.user_state_dir,
    }[kind]
    return finder(APP, appauthor=False, roaming=True)


def config_file() -> Path:
    """``exalsius/config.toml`` in the user config directory; EXLS_CONFIG_FILE overrides it."""
    from pathlib import Path

    override = os.environ.get("EXLS_CONFIG_FILE")
    if override:
        return Path(override).expanduser()
    return Path(user_dir("config"), "config.toml")


def runtime_dir() -> str | None:
    """``$XDG_RUNTIME_DIR/exalsius`` where there is a private runtime directory, else None."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "").strip()
    if sys.platform not in ("darwin", "win32") and runtime and os.path.isdir(runtime):
        return os.path.join(runtime, APP)
    return None


def lock_dir() -> Path:
    """Cross-process locks (token refresh): ``locks`` in the cache directory, private (0700,
    see exls_core.cache).

    Never the runtime directory or TMPDIR, which differ between an SSH shell, a desktop
    terminal and a cron job of the same user: those share one session store, so they must
    share one lock.
    """
    from pathlib import Path

    from exls_core.cache import private_dir

    private_dir(user_dir("cache"))
    return Path(private_dir(os.path.join(user_dir("cache"), "locks")))
