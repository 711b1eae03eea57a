"""Where exls keeps its non-secret files. Tokens never go here: they live in the keyring."""

from __future__ import annotations

import os
from pathlib import Path

APP = "exalsius"


def config_file() -> Path:
    """``exalsius/config.toml`` in the user config directory; EXLS_CONFIG_FILE overrides it."""
    override = os.environ.get("EXLS_CONFIG_FILE")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP, appauthor=False, roaming=True)) / "config.toml"


def cache_dir() -> Path:
    """Discovery documents, the plugin index, SSO route answers: safe to delete at any time."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir(APP, appauthor=False))


def state_dir() -> Path:
    """Small remembered preferences (the last email address used); never tokens."""
    from platformdirs import user_state_dir

    return Path(user_state_dir(APP, appauthor=False))


def lock_dir() -> Path:
    """Cross-process locks (token refresh). The runtime directory where there is one."""
    from platformdirs import user_runtime_dir

    runtime = Path(user_runtime_dir(APP, appauthor=False))
    try:
        runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
        return runtime
    except OSError:
        return cache_dir()
