"""Settings: environment beats file beats defaults; bad values name their source."""

from __future__ import annotations

from pathlib import Path

import pytest

from exls_core.config import DEFAULT_CALLBACK_PORTS, DEFAULT_ISSUER, load_settings
from exls_core.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_file_or_environment(tmp_path: Path) -> None:
    settings = load_settings({}, tmp_path / "missing.toml")
    assert settings.issuer == DEFAULT_ISSUER
    assert settings.client_id == "kSbRc9MOnuMKMVLzhZYBo3xkTtk2KK7B"
    assert settings.audience == "https://api.exalsius.ai"
    assert settings.scopes == ("openid", "profile", "email", "offline_access")
    assert settings.callback_ports == DEFAULT_CALLBACK_PORTS
    assert settings.pkce_timeout == 120 and settings.flow == "auto"
    assert settings.source == "defaults"


def test_environment_beats_file_beats_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[auth]\nclient_id = "from-file"\nflow = "pkce"\npkce_timeout = 30\n'
        "callback_ports = [9100, 0]\n",
    )
    settings = load_settings({"EXLS_AUTH_FLOW": "device_code"}, path)
    assert settings.flow == "device_code"
    assert settings.client_id == "from-file"
    assert settings.pkce_timeout == 30
    assert settings.callback_ports == (9100, 0)
    assert settings.source == str(path)


def test_environment_values_are_parsed() -> None:
    settings = load_settings(
        {
            "EXLS_AUTH_ISSUER": "http://127.0.0.1:8080",
            "EXLS_AUTH_SCOPES": "openid  email openid",
            "EXLS_AUTH_CALLBACK_PORTS": "0",
            "EXLS_AUTH_AUDIENCE": "",
            "EXLS_AUTH_ORGANIZATION": "org_123",
        },
        Path("/nonexistent/config.toml"),
    )
    assert settings.issuer == "http://127.0.0.1:8080"
    assert settings.scopes == ("openid", "email")
    assert settings.callback_ports == (0,)
    assert settings.audience is None
    assert settings.organization == "org_123"


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("EXLS_AUTH_ISSUER", "http://idp.example.com", "http is allowed only for 127.0.0.1"),
        ("EXLS_AUTH_ISSUER", "ftp://idp.example.com", "https issuer URL"),
        ("EXLS_AUTH_PKCE_TIMEOUT", "soon", "a number of seconds"),
        ("EXLS_AUTH_PKCE_TIMEOUT", "-1", "greater than 0"),
        ("EXLS_AUTH_CALLBACK_PORTS", "8999,99999", "port numbers from 0 to 65535"),
        ("EXLS_AUTH_CALLBACK_PORTS", "http", "port numbers"),
        ("EXLS_AUTH_SCOPES", "profile email", "include 'openid'"),
        ("EXLS_AUTH_FLOW", "pk ce;rm", "'auto' or a flow id"),
        ("EXLS_AUTH_CLIENT_ID", "  ", "a non-empty string"),
    ],
)
def test_bad_environment_values_name_the_variable(var: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({var: value}, Path("/nonexistent/config.toml"))
    assert err.value.message.startswith(f"{var}: expected ")
    assert expected in err.value.message
    assert "\n" not in err.value.message and err.value.exit_code == 2


def test_bad_file_value_names_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[auth]\npkce_timeout = 'later'\n")
    with pytest.raises(ConfigError, match=rf"{path}: \[auth\] pkce_timeout: expected a number"):
        load_settings({}, path)


def test_malformed_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[auth\nissuer = \n")
    with pytest.raises(ConfigError, match=rf"{path}: invalid TOML .*fix or remove the file"):
        load_settings({}, path)


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "[auth]\nisuer = 'https://x'\n")
    with pytest.raises(ConfigError, match=r"\[auth\] isuer is not a setting"):
        load_settings({}, path)


def test_sso_domain_table(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[auth.sso_domains]\n"Acme.com" = { connection = "acme-okta", name = "Acme Okta" }\n',
    )
    domains = load_settings({}, path).sso_domains
    assert domains["acme.com"].name == "Acme Okta"
    assert dict(domains["acme.com"].params) == {"connection": "acme-okta"}


def test_sso_domain_rows_must_be_tables_of_strings(tmp_path: Path) -> None:
    path = write(tmp_path, '[auth.sso_domains]\n"acme.com" = { connection = 3 }\n')
    with pytest.raises(ConfigError, match="must be a table of strings"):
        load_settings({}, path)


def test_config_file_location_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "exalsius").mkdir()
    (tmp_path / "exalsius" / "config.toml").write_text("[auth]\nclient_id = 'xdg'\n")
    assert load_settings({}).client_id == "xdg"


def test_flow_tables_keep_plain_values_as_their_toml_text(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[flows.acme]\nreader = "Yubikey 5"\nwait = 30\nratio = 1.5\nbeep = false\n'
        "[flows.device_code]\nqr = true\nhttp_timeout = 3\n",
    )
    settings = load_settings({}, path)
    assert settings.flow_tables == {
        "acme": {"reader": "Yubikey 5", "wait": "30", "ratio": "1.5", "beep": "false"},
        "device_code": {"qr": "true", "http_timeout": "3"},  # its own, not core's
    }
    assert settings.source == str(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[flows.pkce]\ntimeout = 30\n", r"\[flows.pkce\] timeout: set \[auth\] pkce_timeout"),
        ("[flows.acme]\ncallback_ports = 3\n", r"\[flows.acme\] callback_ports: set \[auth\] c"),
        ("[flows.acme]\nports = [1, 2]\n", r"\[flows.acme\] ports: expected a string, number"),
        ("[flows]\nacme = 3\n", r"\[flows.acme\]: expected a table of settings"),
        ("[other]\nx = 1\n", r"expected only \[auth\] and \[flows.<flow id>\] tables"),
    ],
)
def test_flow_tables_refuse_what_is_not_theirs(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings({}, write(tmp_path, text))
    assert "\n" not in caught.value.message
