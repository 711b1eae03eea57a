"""A routing plugin installed as a real distribution is found through its entry point and used."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "tests" / "plugins" / "exls-routing-example"

RESOLVE = """
import json, sys
import exls_routing_example
from exls_core.config import load_settings
from exls_core.registry import installed_entries, load_registry
from exls_core.routing import resolve_route

warnings = []
registry = load_registry(warn=warnings.append)
settings = load_settings()
routes = {
    email: resolve_route(email, settings, registry, organization=None, warn=warnings.append)
    for email in sys.argv[1:]
}
print(json.dumps({
    "entries": [[e.group, e.name, e.distribution] for e in installed_entries(fresh=True)],
    "module": exls_routing_example.__file__,
    "routes": {e: [r.announcement, r.params] for e, r in routes.items()},
    "warnings": warnings,
}))
"""


def _uv() -> list[str]:
    found = shutil.which("uv")
    if found:
        return [found]
    if importlib.util.find_spec("uv") is None:
        pytest.fail("uv is needed to build a fresh virtual environment: pip install uv")
    return [sys.executable, "-m", "uv"]


def _env(**extra: str) -> dict[str, str]:
    # The test's private XDG directories (tests/conftest.py) carry over; the outer venv does not.
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with exls-core, the device code flow and the example routing plugin."""
    venv = tmp_path_factory.mktemp("routing-plugin") / "venv"
    subprocess.run([*_uv(), "venv", "-q", "-p", sys.executable, str(venv)], check=True, env=_env())
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    projects = [ROOT / "exls_core", ROOT / "exls_flows_device", EXAMPLE]
    subprocess.run(
        [
            *_uv(),
            "pip",
            "install",
            "-q",
            "--no-sources",
            "--python",
            str(python),
            *map(str, projects),
        ],
        check=True,
        env=_env(),
        timeout=600,
    )
    return python


def test_exls_login_announces_the_plugins_route_before_any_network(
    venv_python: Path, tmp_path: Path
) -> None:
    exls = venv_python.parent / "exls"
    done = subprocess.run(
        [str(exls), "login", "--email", "alice@corp.example", "--auth-flow", "device_code"],
        capture_output=True,
        text=True,
        env=_env(
            EXLS_AUTH_ISSUER="http://127.0.0.1:9/",  # closed: login stops at discovery
            # A working keyring (login checks it before discovery): the tests' file keyring.
            PYTHON_KEYRING_BACKEND="exls_test_filekeyring.FileKeyring",
            PYTHONPATH=str(ROOT / "tests" / "session"),
            EXLS_TEST_KEYRING_DIR=str(tmp_path / "keyring"),
        ),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    lines = done.stderr.splitlines()
    assert lines[0] == "Signing in with Example Corp Okta (corp.example)", done.stderr
    assert done.returncode == 1
    assert "Cannot reach the identity provider" in done.stderr
    assert "Warning" not in done.stderr


def test_the_installed_example_plugin_routes_its_domain(venv_python: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[auth.sso_domains]\n"acme.com" = { name = "Acme Entra", domain_hint = "acme.com" }\n',
        encoding="utf-8",
    )
    done = subprocess.run(
        [str(venv_python), "-c", RESOLVE, "alice@corp.example", "bob@acme.com", "eve@else.org"],
        capture_output=True,
        text=True,
        env=_env(EXLS_CONFIG_FILE=str(config)),
        cwd=tmp_path,  # so nothing is imported from the source tree
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert ["exls.routing", "example", "exls-routing-example"] in result["entries"]
    assert Path(result["module"]).is_relative_to(venv_python.parent.parent)
    assert result["routes"] == {
        "alice@corp.example": [
            "Signing in with Example Corp Okta (corp.example)",
            {"connection": "example-okta"},
        ],
        # The plugin has no answer for these: the config table, then the default page.
        "bob@acme.com": ["Signing in with Acme Entra (acme.com)", {"domain_hint": "acme.com"}],
        "eve@else.org": ["else.org has no SSO configured: using the exalsius login page", {}],
    }
    assert result["warnings"] == []
