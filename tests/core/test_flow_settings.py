"""request.settings: a flow's own settings, with core's one-line errors for bad values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest
from cli_kit import exls

from exls_core.config import FILE_ONLY, PARSERS, env_var
from exls_core.errors import EXIT_USAGE, ConfigError
from exls_core.plugin import FlowSettings
from testkit.http_server import FakeServer, QuietHandler


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
    table = {"reader_wait": "7", "label": "Acme card"}
    settings = FlowSettings("acme", environ={}, file_table=table)
    assert settings.get("reader_wait", parse=seconds) == 7.0
    assert settings.get("label") == "Acme card"
    shadowed = FlowSettings("acme", environ={"EXLS_AUTH_READER_WAIT": "12"}, file_table=table)
    assert shadowed.get("reader_wait", parse=seconds) == 12.0  # environment beats file


def test_a_bad_value_in_the_flow_table_names_the_file_and_key() -> None:
    table = {"reader_wait": "soon"}
    settings = FlowSettings("acme", environ={}, file_table=table, file_path="/etc/exls.toml")
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
    settings = FlowSettings("device_code", environ=environ, file_table=file)
    assert settings.switch("qr", True) is expected
    # what core read for this login (--no-qr) beats both
    pinned = FlowSettings("device_code", {"qr": False}, environ=environ, file_table=file)
    assert pinned.switch("qr", True) is False


def test_a_switch_that_is_no_yes_or_no_says_what_it_takes() -> None:
    settings = FlowSettings("device_code", environ={"EXLS_AUTH_QR": "maybe"})
    with pytest.raises(ConfigError, match=r"^EXLS_AUTH_QR: expected 1 or 0 \(true or false\)"):
        settings.switch("qr", True)


class Discovery(QuietHandler):
    """An identity provider that answers discovery only, and records every path asked."""

    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        if self.path != "/.well-known/openid-configuration":
            self.reply(404, b"{}")
            return
        document = {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
            "device_authorization_endpoint": f"{issuer}/device",
            "jwks_uri": f"{issuer}/jwks",
        }
        self.reply(200, json.dumps(document).encode())

    do_POST = do_GET


def test_the_flow_table_reaches_the_flow_and_a_stray_one_is_named(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[flows.smartcrad]\nreader = "Yubikey"\n'  # a typo: no such flow
        "[flows.pkce]\nlisten = 1\n"  # a flow that is switched off: no warning
        '[flows.device_code]\nqr = "maybe"\n'
    )
    Discovery.paths = []
    with FakeServer(Discovery, name="discovery") as server:
        result = exls(
            "login",
            "--auth-flow",
            "device_code",
            "--email",
            "a@b.co",
            EXLS_CONFIG_FILE=str(config),
            EXLS_AUTH_ISSUER=server.base,
            EXLS_SESSION_STORE="kernel",
            EXLS_DISABLED_PLUGINS="pkce",
        )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert [line for line in lines if "smartcrad" in line] == [
        f"Warning: {config}: [flows.smartcrad] names no installed flow "
        f"(installed: {', '.join(sorted({'device_code', 'pkce', *installed_flows()}))}); "
        "it is ignored."
    ]
    assert lines[-1] == (  # the device flow read the file, before it asked the provider
        f"Error: {config}: [flows.device_code] qr: expected 1 or 0 (true or false), got 'maybe'."
    )
    assert [path for path in Discovery.paths if not path.startswith("/.well-known/")] == []


def installed_flows() -> set[str]:
    """Flow plugins installed beside the built-in ones (a developer's example plugin)."""
    from importlib.metadata import entry_points

    return {entry.name for entry in entry_points(group="exls.flows")}


def test_a_core_setting_in_a_flow_table_stops_exls_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[flows.pkce]\ntimeout = 30\n")
    result = exls("login", "--auth-flow", "device_code", EXLS_CONFIG_FILE=str(config))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"Error: {config}: [flows.pkce] timeout: set [auth] pkce_timeout instead."
    ]


# -- a flow never reads core's settings (issue 25, item 1) -----------------------------------

CORE_NAMES = sorted({*PARSERS, *FILE_ONLY})


@pytest.mark.parametrize("name", CORE_NAMES)
def test_a_flow_never_reads_a_core_setting_from_the_environment(name: str) -> None:
    settings = FlowSettings("acme", environ={env_var(name): "core's own"})
    assert settings.get(name) is None


@pytest.mark.parametrize("core_from", ["environment", "file"])
def test_a_name_core_uses_too_is_read_from_the_flows_own_variable_and_table(
    core_from: str,
) -> None:
    # Core's client id, wherever it was set, never reaches the flow: the flow's own table
    # answers, and the flow's own variable beats the table.
    environ = {"EXLS_AUTH_CLIENT_ID": "core-public-client"} if core_from == "environment" else {}
    table = {"client_id": "service-account"}
    assert FlowSettings("acme", environ=environ, file_table=table).get("client_id") == (
        "service-account"
    )
    own = {**environ, "EXLS_AUTH_ACME_CLIENT_ID": "from-the-flows-variable"}
    assert FlowSettings("acme", environ=own, file_table=table).get("client_id") == (
        "from-the-flows-variable"
    )


def test_a_flow_whose_own_variable_is_a_core_variable_does_not_read_it() -> None:
    # The flow "sso" asking for "routes_url" would name EXLS_AUTH_SSO_ROUTES_URL: core's.
    settings = FlowSettings("sso", environ={"EXLS_AUTH_SSO_ROUTES_URL": "https://core.test/"})
    assert settings.get("routes_url") is None
    assert FlowSettings("sso", file_table={"routes_url": "x"}).get("routes_url") == "x"


def test_the_environment_beats_the_file_for_a_flows_own_names() -> None:
    table = {"reader": "from-file"}
    assert FlowSettings("acme", environ={}, file_table=table).get("reader") == "from-file"
    shared = {"EXLS_AUTH_READER": "shared"}
    assert FlowSettings("acme", environ=shared, file_table=table).get("reader") == "shared"
    own = {**shared, "EXLS_AUTH_ACME_READER": "own"}
    assert FlowSettings("acme", environ=own, file_table=table).get("reader") == "own"


@pytest.mark.parametrize(
    ("flow_id", "variable"),
    [
        ("acme-card", "EXLS_AUTH_ACME_CARD_READER"),
        ("acme.card", "EXLS_AUTH_ACME_CARD_READER"),
        ("AcmeCard", "EXLS_AUTH_ACMECARD_READER"),
    ],
)
def test_a_flow_id_maps_to_a_variable_a_shell_can_set(flow_id: str, variable: str) -> None:
    settings = FlowSettings(flow_id, environ={variable: "yes"})
    assert settings.variable("reader") == variable
    assert settings.get("reader") == "yes"


# -- secrets (issue 25, item 3) --------------------------------------------------------------


def echoing(text: str) -> str:
    raise ValueError(f"a key that starts with k- (not {text})")  # a parser that echoes


@pytest.mark.parametrize("source", ["environment", "file"])
def test_a_secret_is_never_shown_in_an_error(source: str) -> None:
    secret = "s3cr3t-refresh-token"
    if source == "environment":
        settings = FlowSettings("acme", environ={"EXLS_AUTH_ACME_API_KEY": secret})
        where = "EXLS_AUTH_ACME_API_KEY"
    else:
        settings = FlowSettings("acme", environ={}, file_table={"api_key": secret})
        where = "config.toml: [flows.acme] api_key"
    with pytest.raises(ConfigError) as caught:
        settings.get("api_key", parse=echoing, secret=True)
    assert secret not in str(caught.value)
    assert str(caught.value).startswith(f"{where}: expected a key that starts with k- ")
    assert caught.value.exit_code == EXIT_USAGE
    with pytest.raises(ConfigError) as plain:  # the negative control: not secret, echoed
        settings.get("api_key", parse=echoing)
    assert secret in str(plain.value)


def test_a_secret_in_the_config_file_draws_a_warning_naming_the_variable() -> None:
    warnings: list[str] = []
    settings = FlowSettings(
        "acme", environ={}, file_table={"api_key": "k-123", "label": "x"}, warn=warnings.append
    )
    assert settings.get("api_key", secret=True) == "k-123"  # still used, but said
    assert settings.get("label") == "x"  # not a secret: no warning
    assert warnings == [
        "config.toml: [flows.acme] api_key is a secret in a plain-text file; set "
        "EXLS_AUTH_ACME_API_KEY in the environment instead (from your secret store) "
        "and remove it there."
    ]
    assert "k-123" not in warnings[0]
    from_env = FlowSettings("acme", environ={"EXLS_AUTH_ACME_API_KEY": "k"}, warn=warnings.append)
    assert from_env.get("api_key", secret=True) == "k" and len(warnings) == 1


def test_settings_never_show_their_values() -> None:
    settings = FlowSettings("acme", {"pkce_timeout": 3.0}, environ={}, file_table={"key": "k-1"})
    assert repr(settings) == "FlowSettings('acme')"
