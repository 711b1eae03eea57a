"""Where exls keeps its non-secret files. Tokens never go here: they live in the keyring.

On Linux and the BSDs the XDG variables are read directly (what platformdirs would answer):
these paths are needed on the start-up path, and importing platformdirs there costs more
than the lookup itself. macOS and Windows ask platformdirs.

``EXLS_SANDBOX=<directory>`` is a sandboxed run, for trying a plugin or a test provider: every
directory here is inside that test home, and the session store and the token cache leave the
real ones alone (:func:`exls_core.session.selection.open_store`).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # as typing's (mypy reads it so); importing typing costs auth token

if TYPE_CHECKING:
    from pathlib import Path

APP = "exalsius"
SANDBOX_ENV = "EXLS_SANDBOX"
_XDG = {
    "config": ("XDG_CONFIG_HOME", ".config"),
    "cache": ("XDG_CACHE_HOME", ".cache"),
    "state": ("XDG_STATE_HOME", ".local/state"),
}


def sandbox_dir() -> str | None:
    """The test home of a sandboxed run (``EXLS_SANDBOX``, an absolute path), or None."""
    value = os.environ.get(SANDBOX_ENV, "").strip()
    if not value:
        return None
    if not os.path.isabs(value):
        from exls_core.errors import ConfigError

        raise ConfigError(
            f"{SANDBOX_ENV}: expected an absolute directory, got {value[:60]!r} "
            f'(e.g. {SANDBOX_ENV}="$(mktemp -d)").'
        )
    return value


def user_dir(kind: str) -> str:
    """The user's ``config``, ``cache`` or ``state`` directory for exls, as a string
    (``<test home>/<kind>`` in a sandboxed run).

    Strings, not Path: the entry-point index needs this on the start-up path, without pathlib.
    """
    sandbox = sandbox_dir()
    if sandbox is not None:
        return os.path.join(sandbox, kind)
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
    """``$XDG_RUNTIME_DIR/exalsius`` where there is a private runtime directory, else None
    (also in a sandboxed run: its locks stay in the test home)."""
    if sandbox_dir() is not None:
        return None
    runtime = os.environ.get("XDG_RUNTIME_DIR", "").strip()
    if sys.platform not in ("darwin", "win32") and runtime and os.path.isdir(runtime):
        return os.path.join(runtime, APP)
    return None


def lock_dir() -> Path:
    """Cross-process locks (token refresh): the private runtime directory where there is one,
    else ``locks`` in the cache directory; either is private (0700), see exls_core.cache."""
    from pathlib import Path

    from exls_core.cache import private_dir

    runtime = runtime_dir()
    if runtime is not None:
        try:
            return Path(private_dir(runtime))
        except OSError:
            pass
    private_dir(user_dir("cache"))
    return Path(private_dir(os.path.join(user_dir("cache"), "locks")))
