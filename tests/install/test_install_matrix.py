"""Real installs: what users, packagers and enterprises get from the distributions.

Each test installs distributions (not editable) into a fresh virtual environment, so flows
are found only through their entry points, exactly as in the field.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from collections.abc import Iterator

import pytest
from install_support import CORE, DEVICE, EXAMPLE, META, PKCE, PLUGINS, ROOT, WORKLOAD

from testkit.http_server import FakeServer, QuietHandler

pytestmark = pytest.mark.install

# A desktop session, as far as flow availability can tell (nothing is launched).
GUI = {"DISPLAY": ":0", "BROWSER": "firefox"}
HEADLESS: dict[str, str] = {}


def test_full_install_offers_the_flows_and_prefers_the_browser(make_venv) -> None:  # type: ignore[no-untyped-def]
    venv = make_venv(META, CORE, PKCE, DEVICE, WORKLOAD)  # what `pip install exls` gives
    assert list(venv.path.glob("lib/python*/site-packages/exls-0.1.0.dist-info"))
    version = venv.run("--version")
    assert version.returncode == 0
    assert "flow device_code: exls-flows-device 0.1.0" in version.stdout
    assert "flow pkce: exls-flows-pkce 0.1.0" in version.stdout
    assert "flow workload: exls-flows-workload 0.1.0" in version.stdout
    listing = venv.flows_json(**GUI)
    assert {row["id"]: row["status"] for row in listing["flows"]} == {
        "pkce": "available",
        "device_code": "available",
        "workload": "unavailable",  # no CI token here
    }
    assert listing["auto"] == "pkce"
    assert venv.flows_json(**HEADLESS)["auto"] == "device_code"


def test_headless_only_build_uses_device_code(make_venv) -> None:  # type: ignore[no-untyped-def]
    venv = make_venv(CORE, DEVICE)
    listing = venv.flows_json(**GUI)
    assert [row["id"] for row in listing["flows"]] == ["device_code"]
    assert listing["auto"] == "device_code"  # even with a display: there is no browser flow
    forced = venv.run("login", "--auth-flow", "pkce", "--email", "alice@example.com")
    assert forced.returncode == 2
    assert "flow 'pkce' is not installed; installed flows: device_code" in forced.stderr
    env_forced = venv.run("login", "--email", "alice@example.com", EXLS_AUTH_FLOW="pkce")
    assert env_forced.returncode == 2 and "flow 'pkce' is not installed" in env_forced.stderr
    text = venv.run("auth", "flows", **GUI)
    assert "device_code" in text.stdout and "pkce" not in text.stdout


class _FakeProvider(QuietHandler):
    """Discovery plus a token endpoint that refuses every grant: enough to run a flow's hook."""

    grants: list[str] = []

    def _send(self, status: int, body: object) -> None:
        self.reply(status, json.dumps(body).encode())

    def do_GET(self) -> None:
        issuer = self.server.base
        if self.path == "/.well-known/openid-configuration":
            self._send(
                200,
                {
                    "issuer": issuer,
                    "token_endpoint": issuer + "/token",
                    "jwks_uri": issuer + "/jwks",
                },
            )
        else:
            self._send(404, {})

    def do_POST(self) -> None:
        self.grants.append(self.form().decode())
        self._send(400, {"error": "invalid_grant"})


@pytest.fixture
def fake_provider() -> Iterator[str]:
    _FakeProvider.grants = []
    with FakeServer(_FakeProvider, name="install-provider") as server:
        yield server.base


def test_third_party_flow_is_found_ranked_and_run(make_venv, fake_provider: str) -> None:  # type: ignore[no-untyped-def]
    venv = make_venv(CORE, DEVICE, EXAMPLE)
    listing = venv.flows_json()
    row = next(r for r in listing["flows"] if r["id"] == "refresh_import")
    assert (row["distribution"], row["version"], row["status"]) == (
        "exls-flow-example",
        "1.0.0",
        "unavailable",
    )
    assert row["reason"] == "EXLS_AUTH_REFRESH_IMPORT_REFRESH_TOKEN is not set"
    assert venv.flows_json(EXLS_AUTH_REFRESH_IMPORT_REFRESH_TOKEN="rt")["auto"] == "refresh_import"

    result = venv.run(
        "login",
        "--email",
        "alice@example.com",
        EXLS_AUTH_ISSUER=fake_provider,
        EXLS_AUTH_REFRESH_IMPORT_REFRESH_TOKEN="imported-refresh-token",
    )
    assert result.returncode == 1, result.stderr
    assert "The identity provider refused the imported token (invalid_grant)." in result.stderr
    assert len(_FakeProvider.grants) == 1 and "grant_type=refresh_token" in _FakeProvider.grants[0]
    assert "imported-refresh-token" not in result.stderr + result.stdout
    # The why-line is the chosen flow's own reason (issue 25, item 6).
    assert "Using the refresh token import: a refresh token was handed over." in result.stderr


def test_a_flow_setting_from_the_config_file_counts_for_the_check_and_the_run(  # type: ignore[no-untyped-def]
    make_venv, fake_provider: str, tmp_path
) -> None:
    """`auth flows` and `login` agree on a setting kept only in config.toml; a secret there
    draws a warning naming the variable to use instead, and is never shown."""
    venv = make_venv(CORE, DEVICE, EXAMPLE)
    secret = "rt-kept-in-the-config-file"
    config = tmp_path / "config.toml"
    config.write_text(f'[flows.refresh_import]\nrefresh_token = "{secret}"\n')
    listing = venv.run("auth", "flows", "--json", EXLS_CONFIG_FILE=str(config))
    assert listing.returncode == 0, listing.stderr
    rows = {r["id"]: r for r in json.loads(listing.stdout)["flows"]}
    assert rows["refresh_import"]["status"] == "available"
    assert json.loads(listing.stdout)["auto"] == "refresh_import"
    assert secret not in listing.stdout + listing.stderr

    text = venv.run("auth", "flows", EXLS_CONFIG_FILE=str(config))
    warning = (
        f"Warning: {config}: [flows.refresh_import] refresh_token is a secret in a plain-text "
        "file; set EXLS_AUTH_REFRESH_IMPORT_REFRESH_TOKEN in the environment instead"
    )
    assert [line for line in text.stderr.splitlines() if line.startswith(warning)] != []
    assert secret not in text.stdout + text.stderr

    result = venv.run(
        "login",
        "--email",
        "alice@example.com",
        EXLS_CONFIG_FILE=str(config),
        EXLS_AUTH_ISSUER=fake_provider,
    )
    assert result.returncode == 1, result.stderr
    assert "The identity provider refused the imported token (invalid_grant)." in result.stderr
    assert f"refresh_token={secret}" in _FakeProvider.grants[-1]  # the run read the file too
    assert len([line for line in result.stderr.splitlines() if line.startswith(warning)]) == 1
    assert secret not in result.stderr + result.stdout


def test_the_example_plugins_own_tests_pass_in_the_sandbox(make_venv) -> None:  # type: ignore[no-untyped-def]
    """The template plugin authors copy: its tests (the ones docs/plugins.md shows) run
    against the installed plugin and a real, sandboxed exls (exls_sandbox fixture)."""
    venv = make_venv(CORE, DEVICE, EXAMPLE, "pytest>=8")
    result = subprocess.run(
        [str(venv.path / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=EXAMPLE,
        env=venv.env(PYTHONDONTWRITEBYTECODE="1"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("6 passed"), summary


def transcripts(page: str) -> list[tuple[str, str]]:
    """(command, output) of each ``$ exls ...`` in the page's ``text`` blocks."""
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    found = []
    for block in re.findall(r"^```text\n(.*?)^```$", text, re.MULTILINE | re.DOTALL):
        for part in re.split(r"^\$ ", block, flags=re.MULTILINE)[1:]:
            command, _, output = part.partition("\n")
            found.append((command, output.strip()))
    return found


def test_the_plugin_pages_transcripts_are_what_exls_prints(make_venv) -> None:  # type: ignore[no-untyped-def]
    """docs/plugins.md shows `exls --version` and `exls auth flows` with the example plugin
    installed, over SSH without a display: the same install prints exactly that."""
    venv = make_venv(CORE, PKCE, DEVICE, EXAMPLE)
    shown = transcripts("plugins.md")
    assert [command for command, _ in shown] == [
        "exls --version",
        "exls auth flows",
        "EXLS_AUTH_REFRESH_IMPORT_REFRESH_TOKEN=... exls auth flows",
    ]
    for command, output in shown:
        words = shlex.split(command)
        env = dict(w.split("=", 1) for w in words if "=" in w and w[0].isupper())
        argv = [w for w in words if w not in {f"{k}={v}" for k, v in env.items()}]
        assert argv[0] == "exls"
        env = {k: "rt" if v == "..." else v for k, v in env.items()}
        result = venv.run(*argv[1:], SSH_CONNECTION="192.0.2.1 50000 192.0.2.2 22", **env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == output, command


def test_broken_plugins_are_skipped_with_a_warning(make_venv) -> None:  # type: ignore[no-untyped-def]
    venv = make_venv(CORE, DEVICE, PLUGINS / "exls-flow-broken")
    assert venv.run("--version").returncode == 0
    result = venv.run("auth", "flows", "--json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    rows = {r["id"]: r for r in listing["flows"]}
    assert rows["missing_module"]["status"] == "broken"
    assert "ModuleNotFoundError" in rows["missing_module"]["reason"]
    assert rows["raising_check"]["status"] == "broken"
    assert "availability check raised RuntimeError" in rows["raising_check"]["reason"]
    assert rows["device_code"]["status"] == "available" and listing["auto"] == "device_code"

    text = venv.run("auth", "flows")
    warnings = [line for line in text.stderr.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 3
    assert all("pip uninstall exls-flow-broken" in line for line in warnings)
    # Each is called what it is: a broken routing plugin is no "flow plugin".
    assert sum("skipping flow plugin" in line for line in warnings) == 2, warnings
    assert any("skipping routing plugin 'missing_router'" in line for line in warnings), warnings

    strict = venv.run("auth", "flows", EXLS_STRICT_PLUGINS="1")
    assert strict.returncode == 1
    assert "missing_module" in strict.stderr and "Traceback" not in strict.stderr


def test_two_distributions_claiming_one_flow_id_are_both_named(make_venv) -> None:  # type: ignore[no-untyped-def]
    venv = make_venv(CORE, DEVICE, PLUGINS / "exls-flow-duplicate")
    listing = venv.flows_json()
    row = next(r for r in listing["flows"] if r["id"] == "device_code")
    assert row["status"] == "broken"
    assert "exls-flows-device 0.1.0" in row["reason"]
    assert "exls-flow-duplicate 2.0.0" in row["reason"]
    forced = venv.run("login", "--auth-flow", "device_code", "--email", "a@example.com")
    assert forced.returncode == 1
    assert "claimed by both" in forced.stderr
