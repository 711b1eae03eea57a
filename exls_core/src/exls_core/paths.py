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

    Strings, not Path: the plugin index needs this on the start-up path, without pathlib.
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


def _user_dir(kind: str) -> Path:
    from pathlib import Path

    return Path(user_dir(kind))


def write_json_quietly(
    path: str | os.PathLike[str], data: object, *, private: bool = False
) -> None:
    """Write a cache or state file atomically (temporary file, then rename); best effort:
    a read-only or full disk only costs a refetch or a forgotten default, so errors are
    ignored. ``private`` makes the file readable by its owner only."""
    import json

    tmp = f"{os.fspath(path)}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(os.fspath(path)), mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(data, file)
        os.replace(tmp, path)
    except (OSError, TypeError, ValueError):
        import contextlib

        with contextlib.suppress(OSError):
            os.remove(tmp)


def config_file() -> Path:
    """``exalsius/config.toml`` in the user config directory; EXLS_CONFIG_FILE overrides it."""
    from pathlib import Path

    override = os.environ.get("EXLS_CONFIG_FILE")
    if override:
        return Path(override).expanduser()
    return _user_dir("config") / "config.toml"


def cache_dir() -> Path:
    """Discovery documents, the plugin index, SSO route answers: safe to delete at any time."""
    return _user_dir("cache")


def state_dir() -> Path:
    """Small remembered preferences (the last email address used); never tokens."""
    return _user_dir("state")


def lock_dir() -> Path:
    """Cross-process locks (token refresh): the private runtime directory where there is one."""
    from pathlib import Path

    runtime = os.environ.get("XDG_RUNTIME_DIR", "").strip()
    if sys.platform not in ("darwin", "win32") and runtime and os.path.isdir(runtime):
        directory = Path(runtime) / APP
        try:
            directory.mkdir(mode=0o700, exist_ok=True)
            return directory
        except OSError:
            pass
    directory = cache_dir() / "locks"
    directory.mkdir(parents=True, exist_ok=True)
    return directory
