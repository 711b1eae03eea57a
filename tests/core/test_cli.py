"""The CLI surface: help, version, exit codes, and where output goes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCOPE = "EXLS_KERNEL_KEY_SCOPE"  # this test's kernel keys (tests/conftest.py) stay its own


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


def test_help_lists_the_commands() -> None:
    result = exls("--help")
    assert result.returncode == 0
    for name in ("login", "logout", "auth"):
        assert name in result.stdout


def test_version_lists_flow_plugins() -> None:
    result = exls("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("exls 0.1.0\n")


def test_unknown_command_is_a_usage_error() -> None:
    result = exls("lgoin")
    assert result.returncode == 2
    assert "No such command 'lgoin'" in result.stderr
    assert result.stdout == ""


def test_unknown_flow_is_a_usage_error_before_any_prompt() -> None:
    result = exls("login", "--auth-flow", "carrier_pigeon")
    assert result.returncode == 2
    assert "flow 'carrier_pigeon' is not installed; installed flows:" in result.stderr
    assert "email" not in result.stderr.lower()


@pytest.mark.parametrize(
    ("var", "value"),
    [("EXLS_AUTH_PKCE_TIMEOUT", "soon"), ("EXLS_AUTH_ISSUER", "http://evil.example")],
)
def test_bad_configuration_exits_2_with_one_line(var: str, value: str) -> None:
    result = exls("login", "--email", "a@example.com", **{var: value})
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith(f"Error: {var}: expected")


def test_malformed_config_file_names_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "exalsius" / "config.toml"
    config.parent.mkdir()
    config.write_text("[auth\n")
    result = exls("login", "--email", "a@example.com", XDG_CONFIG_HOME=str(tmp_path))
    assert result.returncode == 2
    assert str(config) in result.stderr and "invalid TOML" in result.stderr


def test_auth_flows_json_is_data_on_stdout() -> None:
    import json

    result = exls("auth", "flows", "--json")
    assert result.returncode == 0
    listing = json.loads(result.stdout)
    assert set(listing) == {"auto", "flows"}


def test_shell_completion_offers_commands_and_installed_flows() -> None:
    commands = exls(COMP_WORDS="exls a", COMP_CWORD="1", _EXLS_COMPLETE="bash_complete")
    assert commands.returncode == 0 and "plain,auth" in commands.stdout.splitlines()
    flows = exls(
        COMP_WORDS="exls login --auth-flow ", COMP_CWORD="3", _EXLS_COMPLETE="bash_complete"
    )
    offered = {line.split(",", 1)[1] for line in flows.stdout.splitlines()}
    assert "auto" in offered
    assert offered - {"auto"} == set(_installed_flow_ids())


def _installed_flow_ids() -> list[str]:
    from exls_core.plugin_index import flow_entries

    return [e.name for e in flow_entries(fresh=True)]
