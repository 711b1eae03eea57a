"""request.settings: a flow's own settings, with core's one-line errors for bad values."""

from __future__ import annotations

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
