"""request.settings: a flow's own settings, with core's one-line errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_kit import exls

from exls_core.errors import EXIT_USAGE, ConfigError
from exls_core.plugin import FlowSettings


def seconds(value: str) -> float:
    number = float(value) if value.replace(".", "", 1).isdigit() else -1.0
    if number <= 0:
        raise ValueError("a number of seconds")
    return number


def test_the_flow_id_prefix_comes_first_then_the_shared_name() -> None:
    settings = FlowSettings("pkce", {"pkce_timeout": 30.0, "callback_ports": (0,)})
    assert settings.get("timeout") == 30.0  # pkce_timeout
    assert settings.get("callback_ports") == (0,)
    assert settings.get("missing", "fallback") == "fallback"


def test_other_names_come_from_the_environment_checked_by_the_flow() -> None:
    environ = {"EXLS_AUTH_ACME_READER_WAIT": "12", "EXLS_AUTH_READER_WAIT": "99"}
    settings = FlowSettings("acme", environ=environ)
    assert settings.get("reader_wait", parse=seconds) == 12.0
    assert FlowSettings("other", environ=environ).get("reader_wait", parse=seconds) == 99.0
    assert FlowSettings("other", environ=environ).get("reader_wait") == "99"  # no parser: text


def test_a_bad_value_is_a_one_line_usage_error_naming_the_variable() -> None:
    settings = FlowSettings("acme", environ={"EXLS_AUTH_ACME_READER_WAIT": "soon"})
    with pytest.raises(ConfigError) as caught:
        settings.get("reader_wait", parse=seconds)
    assert caught.value.exit_code == EXIT_USAGE
    assert (
        str(caught.value) == "EXLS_AUTH_ACME_READER_WAIT: expected a number of seconds, got 'soon'."
    )


def test_values_core_read_beat_the_environment() -> None:
    # --no-qr reaches the device flow as qr=False, whatever the environment says.
    settings = FlowSettings("device_code", {"qr": False}, environ={"EXLS_AUTH_QR": "1"})
    assert settings.get("qr", True) is False


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("EXLS_AUTH_PKCE_TIMEOUT", "soon", "a number of seconds"),
        ("EXLS_AUTH_CALLBACK_PORTS", "8999,99999", "comma-separated port numbers"),
    ],
)
def test_pkce_settings_still_stop_exls_before_anything_is_asked(
    variable: str, value: str, expected: str
) -> None:
    result = exls("login", "--auth-flow", "device_code", **{variable: value})
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {variable}: expected {expected}")
    assert "email" not in result.stderr.lower()


def test_a_flow_table_in_the_config_file_comes_after_the_environment() -> None:
    table = ("/etc/exls.toml", {"reader_wait": "7", "label": "Acme card"})
    settings = FlowSettings("acme", file=table)
    assert settings.get("reader_wait", parse=seconds) == 7.0
    assert settings.get("label") == "Acme card"
    shadowed = FlowSettings("acme", environ={"EXLS_AUTH_READER_WAIT": "12"}, file=table)
    assert shadowed.get("reader_wait", parse=seconds) == 12.0  # environment beats file


def test_a_bad_value_in_the_flow_table_names_the_file_and_key() -> None:
    settings = FlowSettings("acme", environ={}, file=("/etc/exls.toml", {"reader_wait": "soon"}))
    with pytest.raises(ConfigError) as caught:
        settings.get("reader_wait", parse=seconds)
    assert str(caught.value) == (
        "/etc/exls.toml: [flows.acme] reader_wait: expected a number of seconds, got 'soon'."
    )
    assert caught.value.exit_code == EXIT_USAGE


@pytest.mark.parametrize(
    ("environ", "file", "expected"),
    [
        ({}, {}, True),
        ({"EXLS_AUTH_DEVICE_CODE_QR": "0"}, {}, False),  # text "0" is no, not a true string
        ({"EXLS_AUTH_QR": "off"}, {"qr": "true"}, False),
        ({}, {"qr": "false"}, False),
        ({}, {"qr": "yes"}, True),
    ],
)
def test_switches_read_yes_and_no_words(
    environ: dict[str, str], file: dict[str, str], expected: bool
) -> None:
    settings = FlowSettings("device_code", environ=environ, file=("config.toml", file))
    assert settings.switch("qr", True) is expected


def test_a_switch_that_is_no_yes_or_no_says_what_it_takes() -> None:
    settings = FlowSettings("device_code", environ={"EXLS_AUTH_QR": "maybe"})
    with pytest.raises(ConfigError, match=r"^EXLS_AUTH_QR: expected 1 or 0 \(true or false\)"):
        settings.switch("qr", True)


def test_a_flow_table_for_no_installed_flow_is_named_in_a_warning(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[flows.smartcrad]\nreader = "Yubikey"\n[flows.device_code]\nqr = false\n')
    result = exls(
        "login",
        "--auth-flow",
        "device_code",
        "--email",
        "a@b.co",
        EXLS_CONFIG_FILE=str(config),
        EXLS_AUTH_ISSUER="http://127.0.0.1:9/",  # nothing listens: the login ends there
        EXLS_SESSION_STORE="kernel",
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines()[-1].startswith("Error: Cannot reach the identity provider")
    warnings = [line for line in result.stderr.splitlines() if "[flows." in line]
    assert warnings == [
        f"Warning: {config}: [flows.smartcrad] names no installed flow "
        "(installed: device_code, pkce); it is ignored."
    ]


def test_a_core_setting_in_a_flow_table_stops_exls_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[flows.pkce]\ntimeout = 30\n")
    result = exls("login", "--auth-flow", "device_code", EXLS_CONFIG_FILE=str(config))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"Error: {config}: [flows.pkce] timeout: set [auth] pkce_timeout instead."
    ]
