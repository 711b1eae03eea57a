"""Settings, from one place: environment beats config file beats defaults.

Every setting has an environment variable ``EXLS_AUTH_<NAME>`` (or the name in ENV_NAMES) and
a key ``<name>`` in the ``[auth]`` table of ``config.toml``. Bad values stop exls with a
one-line error that names the variable or the file and key, and what is expected (exit 2).
A flow plugin's own settings sit in ``[flows.<flow id>]``; the flow checks them
(FlowSettings in the contract), core only that they are plain values.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from exls_core.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

DEFAULT_ISSUER = "https://exalsius.eu.auth0.com/"
DEFAULT_CLIENT_ID = "kSbRc9MOnuMKMVLzhZYBo3xkTtk2KK7B"
DEFAULT_AUDIENCE = "https://api.exalsius.ai"
DEFAULT_SCOPES = ("openid", "profile", "email", "offline_access")
DEFAULT_CALLBACK_PORTS = (8999, 9000, 9001, 9002)
LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}


@dataclass(frozen=True)
class SSORoute:
    """Where an email domain signs in: extra authorization parameters and a name for people.

    What a routing plugin returns (:mod:`exls_core.plugin` exports it), what a row of
    ``[auth.sso_domains]`` holds (``"acme.com" = {name = ..., connection = ...}``) and what
    the routing endpoint answers. Defined here, not in the contract module, because settings
    are read on paths that must not import pluggy.
    """

    name: str
    params: Mapping[str, str]


@dataclass(frozen=True)
class Settings:
    issuer: str = DEFAULT_ISSUER
    client_id: str = DEFAULT_CLIENT_ID
    audience: str | None = DEFAULT_AUDIENCE
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    flow: str = "auto"
    callback_ports: tuple[int, ...] = DEFAULT_CALLBACK_PORTS
    pkce_timeout: float = 120.0
    http_timeout: float = 10.0
    organization: str | None = None
    sso_routes_url: str | None = None
    sso_routes_ttl: float = 3600.0
    sso_domains: Mapping[str, SSORoute] = field(default_factory=dict)
    session_store: str = "auto"  # auto, keyring, kernel or agent (exls_core.session.selection)
    token_cache: bool | None = None  # the access token cached in the kernel keyring (Linux);
    # None: yes, except in a container sharing the host's kernel keyring (token_cache.wanted)
    flow_tables: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """``[flows.<id>]`` of config.toml: a flow's own settings, each value as text."""
    source: str = "defaults"  # the config file that was read, for messages

    @property
    def discovery_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


# --- parsers: each takes the raw value and returns the typed one or raises ValueError(expected)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("a non-empty string")
    return value.strip()


def _optional_text(value: Any) -> str | None:
    if isinstance(value, str) and not value.strip():
        return None  # EXLS_AUTH_AUDIENCE= turns the audience off
    return _text(value)


def _https_url(value: Any, *, what: str = "an https URL") -> str:
    from urllib.parse import urlsplit

    url = _text(value)
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and host in LOOPBACK_HOSTS:
        return url  # local development identity providers
    raise ValueError(f"{what} (http is allowed only for 127.0.0.1, ::1 and localhost)")


def _issuer(value: Any) -> str:
    from urllib.parse import urlsplit

    url = _https_url(value, what="an https issuer URL")
    if urlsplit(url).query or urlsplit(url).fragment:
        raise ValueError("an issuer URL without query or fragment")
    return url


def _optional_url(value: Any) -> str | None:
    if isinstance(value, str) and not value.strip():
        return None
    return _https_url(value)


def _scopes(value: Any) -> tuple[str, ...]:
    items = value.split() if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(s, str) for s in items):
        raise ValueError("space-separated scopes, e.g. 'openid profile email offline_access'")
    scopes = tuple(dict.fromkeys(s.strip() for s in items if s.strip()))
    if "openid" not in scopes:
        raise ValueError("scopes that include 'openid'")
    return scopes


def _flow(value: Any) -> str:
    flow = _text(value)
    if not flow.replace("_", "").replace("-", "").isalnum():
        raise ValueError("'auto' or a flow id such as pkce or device_code")
    return flow


def _ports(value: Any) -> tuple[int, ...]:
    items = value.split(",") if isinstance(value, str) else value
    expected = "comma-separated port numbers from 0 to 65535, e.g. 8999,9000 (0: any free port)"
    if not isinstance(items, list | tuple) or not items:
        raise ValueError(expected)
    ports = []
    for item in items:
        try:
            port = int(str(item).strip())
        except ValueError:
            raise ValueError(expected) from None
        if not 0 <= port <= 65535:
            raise ValueError(expected)
        ports.append(port)
    return tuple(ports)


def _seconds(value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError("a number of seconds, e.g. 120") from None
    if not 0 < seconds <= 86400 or seconds != seconds:
        raise ValueError("a number of seconds greater than 0")
    return seconds


SESSION_STORES = ("auto", "keyring", "kernel", "agent")


def _session_store(value: Any) -> str:
    store = _text(value).lower()
    if store not in SESSION_STORES:
        raise ValueError("auto, keyring, kernel or agent")
    return store


def parse_switch(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    words = {"1": True, "true": True, "yes": True, "on": True}
    words.update({"0": False, "false": False, "no": False, "off": False})
    if isinstance(value, str) and value.strip().lower() in words:
        return words[value.strip().lower()]
    raise ValueError("1 or 0 (true or false)")


PARSERS: dict[str, Callable[[Any], Any]] = {
    "issuer": _issuer,
    "client_id": _text,
    "audience": _optional_text,
    "scopes": _scopes,
    "flow": _flow,
    "callback_ports": _ports,
    "pkce_timeout": _seconds,
    "http_timeout": _seconds,
    "organization": _optional_text,
    "sso_routes_url": _optional_url,
    "sso_routes_ttl": _seconds,
    "session_store": _session_store,
    "token_cache": parse_switch,
}
ENV_NAMES = {"session_store": "EXLS_SESSION_STORE", "token_cache": "EXLS_TOKEN_CACHE"}
FILE_ONLY = {"sso_domains"}
# Read by flows through FlowRequest.settings (pkce's timeout, redirect ports), checked here
# with everything else so that a bad value stops exls before anything is asked.
FLOW_SETTINGS = ("callback_ports", "pkce_timeout")


def env_var(name: str) -> str:
    return ENV_NAMES.get(name) or f"EXLS_AUTH_{name.upper()}"


# A flow never reads these (FlowSettings): they hold core's own settings.
CORE_VARIABLES = frozenset(env_var(name) for name in (*PARSERS, *FILE_ONLY))


def parse_value(parse: Callable[[Any], Any], raw: Any, where: str, *, secret: bool = False) -> Any:
    """``parse(raw)``, or ConfigError naming ``where`` (a variable, or a file and key).
    A ``secret`` value is never shown, not even inside the parser's own message."""
    try:
        return parse(raw)
    except ValueError as exc:
        if not secret:
            raise ConfigError(f"{where}: expected {exc}, got {str(raw)[:60]!r}.") from None
        from exls_core.text import plain_text

        expected = plain_text(str(exc), redact=[str(raw)])
        raise ConfigError(
            f"{where}: expected {expected} (the secret value is not shown)."
        ) from None


def _sso_domains(value: Any, where: str) -> dict[str, SSORoute]:
    if not isinstance(value, dict):
        raise ConfigError(f'{where}: expected a table of domains, e.g. "acme.com" = {{ ... }}')
    table = {}
    for domain, row in value.items():
        if not isinstance(row, dict) or not all(isinstance(v, str) for v in row.values()):
            raise ConfigError(
                f'{where}: "{domain}" must be a table of strings, '
                'e.g. { name = "Acme Okta", connection = "acme-okta" }'
            )
        params = {k: v for k, v in row.items() if k != "name"}
        table[domain.strip().lower()] = SSORoute(name=row.get("name") or domain, params=params)
    return table


def read_file(path: Path) -> dict[str, Any]:
    """A config file's tables (``auth``, ``flows``); {} when there is no file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc}).") from None
    import tomllib  # only when there is a file: most users have none

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc}); fix or remove the file.") from None
    for name, value in data.items():
        if name not in {"auth", "flows"} or not isinstance(value, dict):
            raise ConfigError(
                f"{path}: expected only [auth] and [flows.<flow id>] tables, found {name} "
                f"({'a table' if isinstance(value, dict) else 'a value'})."
            )
    return data


def _flow_tables(value: dict[str, Any], path: Path) -> dict[str, dict[str, str]]:
    """``[flows.<id>]`` tables of plain values, each kept as text (``true``, ``30``) so that
    a flow parses a value from the file as it parses one from the environment."""
    tables: dict[str, dict[str, str]] = {}
    for flow_id, table in value.items():
        where = f"{path}: [flows.{flow_id}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: expected a table of settings, e.g. timeout = 30")
        tables[flow_id] = {}
        for name, raw in table.items():
            core_name = next((n for n in (f"{flow_id}_{name}", name) if n in FLOW_SETTINGS), None)
            if core_name:  # core hands the flow its own checked value: this one would be ignored
                raise ConfigError(f"{where} {name}: set [auth] {core_name} instead.")
            if isinstance(raw, bool):
                tables[flow_id][name] = "true" if raw else "false"
            elif isinstance(raw, (str, int, float)):
                tables[flow_id][name] = str(raw)
            else:
                raise ConfigError(f"{where} {name}: expected a string, number or boolean.")
    return tables


def load_settings(environ: Mapping[str, str] | None = None, path: Path | None = None) -> Settings:
    """Read settings from the environment and the config file, validating every value."""
    from exls_core.paths import config_file

    env = os.environ if environ is None else environ
    path = config_file() if path is None else path
    data = read_file(path)
    from_file = data.get("auth", {})
    known = set(PARSERS) | FILE_ONLY
    for key in from_file:
        if key not in known:
            expected = ", ".join(sorted(known))
            raise ConfigError(
                f"{path}: [auth] {key} is not a setting; expected one of {expected} "
                "(a flow's own settings go in [flows.<flow id>])."
            )

    values: dict[str, Any] = {}
    for name, parse in PARSERS.items():
        var = env_var(name)
        if var in env:
            raw, where = env[var], var
        elif name in from_file:
            raw, where = from_file[name], f"{path}: [auth] {name}"
        else:
            continue
        values[name] = parse_value(parse, raw, where)
    if "sso_domains" in from_file:
        values["sso_domains"] = _sso_domains(
            from_file["sso_domains"], f"{path}: [auth.sso_domains]"
        )
    if "flows" in data:
        values["flow_tables"] = _flow_tables(data["flows"], path)
    values["source"] = str(path) if data else "defaults"
    return Settings(**values)
