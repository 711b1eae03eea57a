"""Start-up cost as a design constraint: fast commands must not import heavy modules.

Runs each command in a fresh interpreter and inspects sys.modules afterwards (not timed:
timings live in the benchmark, `nox -s bench`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = (
    "requests",
    "urllib3",
    "rich",
    "qrcode",
    "jwt",
    "cryptography",
    "requests_oauthlib",
    "oauthlib",
    "exls_flows_pkce",
    "exls_flows_device",
    "importlib.metadata",  # an entry-point scan
)

PROBE = """
import json, sys
from exls_core.cli import main
try:
    main.main(args=sys.argv[1:], prog_name="exls", standalone_mode=False)
except SystemExit:
    pass
except BaseException as exc:
    print(type(exc).__name__, exc, file=sys.stderr)
print(json.dumps(sorted(sys.modules)))
"""


def loaded_modules(args: list[str], tmp_path: Path) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXLS_")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, timeout=60
    )
    last = result.stdout.strip().splitlines()[-1]
    return set(json.loads(last))


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules for h in HEAVY if m == h or m.startswith(h + "."))


@pytest.mark.parametrize("args", [["--help"], ["auth", "--help"], ["login", "--help"]])
def test_help_is_light(args: list[str], tmp_path: Path) -> None:
    assert heavy_in(loaded_modules(args, tmp_path)) == []


def test_version_is_light_once_the_plugin_index_is_warm(tmp_path: Path) -> None:
    loaded_modules(["--version"], tmp_path)  # first run scans entry points and writes the index
    assert heavy_in(loaded_modules(["--version"], tmp_path)) == []


def test_the_probe_would_notice_a_heavy_import(tmp_path: Path) -> None:
    # `auth flows` must load plugins: proves the probe sees imports made by commands.
    modules = loaded_modules(["auth", "flows"], tmp_path)
    assert "importlib.metadata" in modules
