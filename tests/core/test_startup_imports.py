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

SCOPE = "EXLS_KERNEL_KEY_SCOPE"  # this test's kernel keys (tests/conftest.py) stay its own

ROOT = Path(__file__).resolve().parents[2]
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
    "exls_flows_workload",
    "importlib.metadata",  # an entry-point scan
)

PROBE = """
import json, sys
from exls_core.cli_app import main
try:
    main.main(args=sys.argv[1:], prog_name="exls", standalone_mode=False)
except SystemExit:
    pass
except BaseException as exc:
    print(type(exc).__name__, exc, file=sys.stderr)
print(json.dumps(sorted(sys.modules)))
"""


def loaded_modules(args: list[str], tmp_path: Path) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXLS_") or k == SCOPE}
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


# --- `exls auth token` with a valid stored token: the hot path of every script

TOKEN_HEAVY = (
    *HEAVY,
    "pluggy",
    "click",  # the entry point answers `exls auth token` without click
    "filelock",
    "platformdirs",
    "exls_core.plugin",
    "exls_core.registry",
    "exls_core.entry_points",
    "exls_core.cli_app",
    "exls_core.cache",
    "exls_core.discovery",
    "exls_core.http",
    "exls_core.session.validation",
    "exls_core.session.login",
    "exls_core.session.revoke",
    "exls_core.session.locking",
)

TOKEN_PROBE = """
import json, sys
sys.argv = ["exls", *sys.argv[1:]]
code = None
try:
    from exls_core.cli import run
    run()
except SystemExit as exc:
    code = exc.code
print()
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""

BARE_READ = """
import json, sys
import keyring
keyring.get_password("exalsius_cli", "session")
print(json.dumps(sorted(sys.modules)))
"""

STORE = """
import time
from exls_core.config import DEFAULT_CLIENT_ID, DEFAULT_ISSUER
from exls_core.session import Session, SessionStore
SessionStore().save(Session(
    issuer=DEFAULT_ISSUER, client_id=DEFAULT_CLIENT_ID, access_token="at-" + "x" * 900,
    expires_at=time.time() + 3600, refresh_token="rt", id_token="id-" + "y" * 1300,
    scopes=("openid",), flow="pkce", subject="s", email=None, logged_in_at=time.time()))
"""


@pytest.fixture
def file_keyring_env(tmp_path: Path) -> dict[str, str]:
    """A stored valid session in the file-backed test keyring, selected the way users select
    a backend (PYTHON_KEYRING_BACKEND): keyring then skips its own discovery and scan."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXLS_") or k == SCOPE}
    env.update(
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        PYTHONPATH=os.pathsep.join([str(ROOT / "tests" / "session"), env.get("PYTHONPATH", "")]),
        PYTHON_KEYRING_BACKEND="exls_test_filekeyring.FileKeyring",
        EXLS_TEST_KEYRING_DIR=str(tmp_path / "keyring"),
    )
    subprocess.run([sys.executable, "-c", STORE], env=env, check=True, timeout=60)
    return env


def token_probe(args: list[str], env: dict[str, str]) -> tuple[str, int, set[str]]:
    result = subprocess.run(
        [sys.executable, "-c", TOKEN_PROBE, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    *output, report = result.stdout.rstrip("\n").split("\n")
    data = json.loads(report)
    return "\n".join(output).strip(), data["code"], set(data["modules"])


def token_heavy_in(modules: set[str], env: dict[str, str]) -> list[str]:
    # What the keyring backend itself imports is shared with the bare read and not counted.
    bare = subprocess.run(
        [sys.executable, "-c", BARE_READ], env=env, capture_output=True, text=True, timeout=60
    )
    keyrings_own = set(json.loads(bare.stdout))
    return sorted(
        m for m in modules - keyrings_own for h in TOKEN_HEAVY if m == h or m.startswith(h + ".")
    )


def test_auth_token_with_a_valid_token_is_light(file_keyring_env: dict[str, str]) -> None:
    out, code, modules = token_probe(["auth", "token"], file_keyring_env)
    assert (out, code) == ("at-" + "x" * 900, 0)
    assert "exls_core.session.store" in modules and "keyring" in modules  # the probe sees
    assert token_heavy_in(modules, file_keyring_env) == []
    # No entry-point scan by exls: with the backend named, keyring does not scan either.
    assert "importlib.metadata" not in modules or sys.version_info >= (3, 12)


def test_the_token_probe_would_notice_a_heavy_import(file_keyring_env: dict[str, str]) -> None:
    # Negative control: the same probe through click (any extra argument) flags click.
    _, code, modules = token_probe(["auth", "token", "--help"], file_keyring_env)
    assert code in (0, None)
    assert "click" in token_heavy_in(modules, file_keyring_env)


# --- `exls auth token` served from the token cache in the kernel keyring (Linux)

KERNEL_STORE = """
import time
from exls_core.config import load_settings
from exls_core.session import Session, open_store
settings = load_settings()
open_store(settings).save(Session(
    issuer=settings.issuer, client_id=settings.client_id, access_token="at-" + "k" * 900,
    expires_at=time.time() + 3600, refresh_token="rt", id_token="id-" + "y" * 1300,
    scopes=("openid",), flow="device_code", subject="s", email=None, logged_in_at=time.time()))
"""

CACHE_HEAVY = (
    *TOKEN_HEAVY,
    "keyring",
    "jeepney",  # D-Bus
    "secretstorage",
    "dbus",
    "exls_core.config",  # not even the settings: the record names the inputs they come from
    "exls_core.session.store",
    "exls_core.session.refresh",
    "dataclasses",  # (json and re: the probe's own)
    "typing",
)


@pytest.mark.skipif(sys.platform != "linux", reason="the kernel keyring")
@pytest.mark.parametrize("store", ["kernel", "keyring"])
def test_auth_token_from_the_kernel_token_cache_is_lighter_still(
    file_keyring_env: dict[str, str], store: str
) -> None:
    env = {k: v for k, v in file_keyring_env.items() if k != "DBUS_SESSION_BUS_ADDRESS"}
    env["EXLS_TOKEN_CACHE"] = "1"  # chosen: off by default in a container like this machine
    if store == "kernel":  # a headless machine: no keyring backend, the session in the kernel
        del env["PYTHON_KEYRING_BACKEND"]
        env["EXLS_SESSION_STORE"] = "kernel"
    subprocess.run([sys.executable, "-c", KERNEL_STORE], env=env, check=True, timeout=60)
    out, code, modules = token_probe(["auth", "token"], env)
    assert (out, code) == ("at-" + "k" * 900, 0)
    assert "exls_core.session.kernel_keyring" in modules  # the probe sees the cache's reader
    heavy = sorted(m for m in modules for h in CACHE_HEAVY if m == h or m.startswith(h + "."))
    assert heavy == []


@pytest.mark.skipif(sys.platform != "linux", reason="the kernel keyring")
def test_the_cache_probe_would_notice_the_store_path(file_keyring_env: dict[str, str]) -> None:
    # Negative control: with the cache off, the same probe reads the keyring store.
    env = dict(file_keyring_env, EXLS_TOKEN_CACHE="0")
    out, code, modules = token_probe(["auth", "token"], env)
    assert (out, code) == ("at-" + "x" * 900, 0)
    assert {"keyring", "exls_core.session.store", "exls_core.config"} <= modules


# --- exls_core from Python: importing it is free, access_token() is `exls auth token`'s path

API_PROBE = """
import json, sys
import exls_core
before = sorted(sys.modules)
token = exls_core.access_token() if sys.argv[1:] == ["call"] else None
print(json.dumps({"token": token, "import": before, "call": sorted(sys.modules)}))
"""


def test_import_exls_core_is_free_and_access_token_as_light_as_auth_token(
    file_keyring_env: dict[str, str],
) -> None:
    env = dict(file_keyring_env, EXLS_TOKEN_CACHE="0")  # the keyring path: more to import
    result = subprocess.run(
        [sys.executable, "-c", API_PROBE, "call"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    data = json.loads(result.stdout)
    assert data["token"] == "at-" + "x" * 900
    imported = {m for m in data["import"] if m == "exls_core" or m.startswith("exls_core.")}
    assert imported == {"exls_core", "exls_core.lazy"}
    assert heavy_in(set(data["import"])) == []
    assert "click" not in data["call"]
    assert token_heavy_in(set(data["call"]), env) == []
    # the probe sees: the session store was read through the keyring
    assert {"exls_core.session.store", "keyring"} <= set(data["call"])
