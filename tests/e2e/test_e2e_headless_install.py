"""A headless-only install logs in with the device code flow (issue 7, scenario 9).

exls-core and exls-flows-device only, installed (not editable) into a fresh uv virtual
environment, against the real provider and Secret Service; `auto` has nothing else to pick.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from exls_testbed.cli import ExlsCli, login_device, stored_session
from exls_testbed.idp import IdpServer
from exls_testbed.prereq import missing
from exls_testbed.secret_service import SecretService

if TYPE_CHECKING:
    from exls_testbed.browser import Browser

ROOT = Path(__file__).resolve().parents[2]
EMAIL = "alice@example.com"


@pytest.fixture(scope="module")
def headless_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with exls-core and exls-flows-device from the working tree, built and
    installed as wheels (no editable install, not even through the uv workspace sources)."""
    uv = shutil.which("uv")
    if uv is None:
        missing("uv is needed to build the headless-only virtual environment: pip install uv")
    venv = tmp_path_factory.mktemp("headless") / "venv"
    subprocess.run([uv, "venv", "-q", str(venv)], check=True, timeout=120)
    # --no-sources: the root pyproject.toml makes exls-core a uv workspace source, which
    # uv would otherwise install editable as a dependency of exls-flows-device.
    subprocess.run(
        [
            *(uv, "pip", "install", "-q", "--no-sources"),
            *("--python", str(venv / "bin" / "python")),
            str(ROOT / "exls_core"),
            str(ROOT / "exls_flows_device"),
        ],
        check=True,
        timeout=300,
    )
    yield venv


def test_headless_only_install_logs_in_with_device_code(
    headless_venv: Path,
    idp: IdpServer,
    exls: ExlsCli,
    browser: Browser,
    secret_service: SecretService,
) -> None:
    python = headless_venv / "bin" / "python"
    listed = subprocess.run(
        [str(python), "-I", "-c", _INSTALLED],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    installed = json.loads(listed.stdout)
    assert installed["exls_flows_pkce"] is None  # not installed at all
    for name in ("exls_core", "exls_flows_device"):
        assert installed[name]["in_venv"], installed  # from site-packages, not the work tree
        assert not installed[name]["editable"], installed

    headless = ExlsCli(headless_venv / "bin" / "exls", exls.base_env, tmpdir=exls.tmpdir)
    version = headless.run("--version")
    assert version.returncode == 0, version.describe()
    assert "flow device_code: exls-flows-device" in version.stdout
    assert "pkce" not in version.stdout

    # Even on a desktop (no CI, a display, a BROWSER) only the device code flow exists here.
    desktop = {"CI": None, "DISPLAY": ":99", **browser.handoff_env(act=False)}
    flows = headless.run("auth", "flows", "--json", env=desktop)
    assert flows.returncode == 0, flows.describe()
    assert flows.json()["auto"] == "device_code"
    assert [row["id"] for row in flows.json()["flows"]] == ["device_code"]

    idp.configure(skip_consent=True, device_interval=1)
    login = login_device(headless, browser, EMAIL, flow=None, env=desktop)
    assert login.result.returncode == 0, login.result.describe()
    assert f"Logged in as {EMAIL}" in login.result.stderr
    assert "Warning" not in login.result.stderr  # no complaint about a missing pkce plugin
    assert browser.received_urls == []
    assert idp.events("authorization") == []

    session = stored_session(secret_service.search())
    assert session is not None and session["flow"] == "device_code"
    status = headless.run("auth", "status", "--json")
    assert status.returncode == 0, status.describe()
    assert status.json()["email"] == EMAIL and "SecretService" in status.json()["keyring_backend"]
    token = headless.run("auth", "token")
    assert token.returncode == 0 and token.stdout.strip() == session["access_token"]
    assert headless.run("logout").returncode == 0
    assert secret_service.search() == []


_INSTALLED = """
import importlib.util, json, sys
from importlib.metadata import PackageNotFoundError, distribution
out = {}
for name, dist in (("exls_core", "exls-core"), ("exls_flows_device", "exls-flows-device"),
                   ("exls_flows_pkce", "exls-flows-pkce")):
    spec = importlib.util.find_spec(name)
    try:
        direct = distribution(dist).read_text("direct_url.json") or "{}"
    except PackageNotFoundError:
        direct = None
    out[name] = None if spec is None and direct is None else {
        "in_venv": bool(spec) and spec.origin.startswith(sys.prefix),
        "editable": bool(json.loads(direct or "{}").get("dir_info", {}).get("editable")),
    }
print(json.dumps(out))
"""
