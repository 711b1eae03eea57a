"""A third-party flow plugin, installed for real, that returns tokens without the nonce.

Core generated the nonce, so core checks it: a plugin that says nothing about the nonce gets
the check (``NonceCheck.REQUIRED``), whatever it forgot to send. The distribution
(tests/plugins/exls-flow-no-nonce) is a redirect flow with PKCE that never sends
``request.nonce``; it is installed, not editable, next to exls-core and the example plugin
in a fresh virtual environment, and run through that environment's ``exls`` against the
lying provider. Controls: the same plugin sending the nonce logs in, and the example plugin
(an imported refresh token, whose refreshed ID token carries the first login's nonce,
OpenID Connect Core 12.2) logs in because it declares ``NonceCheck.NOT_IN_PROTOCOL``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from adv_kit import EMAIL, PREVIOUS_EMAIL, Result, Sandbox, assert_clean_rejection, leaks
from lying_idp import LyingIdP, Tenant

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "install"))
from install_support import CORE, DEVICE, EXAMPLE, PLUGINS, Venv, make_venv

__all__ = ["make_venv"]  # the fixture, for pytest
pytestmark = [pytest.mark.install, pytest.mark.attack("nonce")]

FORGETFUL = PLUGINS / "exls-flow-no-nonce"


@pytest.fixture
def venv(make_venv: Any) -> Venv:
    made: Venv = make_venv(CORE, DEVICE, EXAMPLE, FORGETFUL)
    return made


def run(venv: Venv, box: Sandbox, *args: str, **env: str) -> Result:
    done = subprocess.run(
        [venv.exls, *args],
        env=box.env(**env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=box.home,
    )
    return Result(args, done.returncode, done.stdout, done.stderr, 0.0)


def login(venv: Venv, box: Sandbox, flow: str, **env: str) -> Result:
    return run(venv, box, "login", "--auth-flow", flow, "--email", EMAIL, "--no-qr", **env)


def status(venv: Venv, box: Sandbox) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(run(venv, box, "auth", "status", "--json").out)
    return data


def sandbox(idp: LyingIdP, tmp_path: Path, name: str, **config: Any) -> tuple[Tenant, Sandbox]:
    tenant = idp.tenant(name, **config)
    box = Sandbox(tmp_path / name, tenant)
    box.seed()
    return tenant, box


def test_a_plugin_that_forgets_the_nonce_cannot_log_in(
    venv: Venv, idp: LyingIdP, tmp_path: Path
) -> None:
    tenant, box = sandbox(idp, tmp_path, "plugin-forgets-the-nonce")
    before = box.keyring()
    result = login(venv, box, "forgetful")
    assert_clean_rejection(result, before, box.keyring())
    assert result.error == "ID token rejected: nonce missing", result
    assert "nonce" not in tenant.authorizations[0]  # it really sent none
    assert tenant.hits["token:authorization_code"] == 1  # and got tokens, which core refused
    assert status(venv, box)["email"] == PREVIOUS_EMAIL
    assert leaks(tenant, result.out, result.err) == []


@pytest.mark.attack("control")
def test_the_same_plugin_sending_the_nonce_logs_in(
    venv: Venv, idp: LyingIdP, tmp_path: Path
) -> None:
    tenant, box = sandbox(idp, tmp_path, "plugin-sends-the-nonce")
    result = login(venv, box, "forgetful", EXLS_TEST_SEND_NONCE="1")
    assert result.rc == 0, result
    assert tenant.authorizations[0]["nonce"]
    assert status(venv, box)["email"] == EMAIL


@pytest.mark.attack("control")
def test_an_imported_refresh_token_declares_that_it_has_no_nonce(
    venv: Venv, idp: LyingIdP, tmp_path: Path
) -> None:
    def refreshed_id_token(tenant: Tenant, context: dict[str, Any]) -> str:
        return tenant.signer.sign(tenant.claims_for("n-of-the-login-that-issued-it"))

    tenant, box = sandbox(
        idp, tmp_path, "plugin-imports-a-refresh-token", refresh_id_token=refreshed_id_token
    )
    imported = tenant.record("refresh_token", "RT-imported-from-a-vault")
    tenant.refresh_valid.add(imported)
    result = login(venv, box, "refresh_import", EXLS_AUTH_REFRESH_IMPORT_REFRESH_TOKEN=imported)
    assert result.rc == 0, result
    assert status(venv, box)["email"] == EMAIL
