"""Running ``exls`` as a user would: a fresh interpreter, no EXLS_ variables but the given."""

from __future__ import annotations

import os
import subprocess
import sys

SCOPE = "EXLS_KERNEL_KEY_SCOPE"  # the calling test's kernel keys (tests/conftest.py) stay its own


def exls(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("EXLS_") or k == SCOPE}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "exls_core.cli", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
