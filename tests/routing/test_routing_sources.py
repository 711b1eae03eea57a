"""Where a domain signs in: routing plugins, then the config table, then the endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exls_core.config import Settings, load_settings
from exls_core.errors import EXIT_USAGE, PluginError, UsageError
from exls_core.plugin import SSORoute, hookimpl
from exls_core.registry import Registry, new_plugin_manager
from exls_core.routing import Route, resolve_route

CLOSED_URL = "http://127.0.0.1:9/routes"  # the discard port: nothing listens there


class Directory:
    """A routing plugin backed by a dict, counting how often it is asked."""

    def __init__(self, routes: dict[str, SSORoute]) -> None:
        self.routes = routes
        self.asked: list[tuple[str, str]] = []

    @hookimpl
    def exls_sso_route(self, email: str, domain: str) -> SSORoute | None:
        self.asked.append((email, domain))
        return self.routes.get(domain)


class Raising:
    @hookimpl
    def exls_sso_route(self, email: str, domain: str) -> SSORoute | None:
        raise RuntimeError("directory down")


class Junk:
    @hookimpl
    def exls_sso_route(self, email: str, domain: str) -> Any:
        return {"connection": "not-an-SSORoute"}


def registry(*plugins: object, warnings: list[str] | None = None) -> Registry:
    """A registry asking ``plugins`` in the order given (pluggy asks the last registered first)."""
    pm = new_plugin_manager()
    for index, plugin in reversed(list(enumerate(plugins))):
        pm.register(plugin, name=f"exls.routing:plugin{index}")
    sink = warnings if warnings is not None else []
    return Registry(pm=pm, flows={}, broken={}, warn=sink.append)


ACME_TABLE = {"acme.com": SSORoute(name="Acme Okta", params={"connection": "acme-okta"})}


def resolve(
    email: str,
    settings: Settings | None = None,
    *plugins: object,
    organization: str | None = None,
) -> tuple[Route, list[str]]:
    warnings: list[str] = []
    route = resolve_route(
        email,
        settings or Settings(),
        registry(*plugins, warnings=warnings),
        organization=organization,
        warn=warnings.append,
    )
    return route, warnings


def test_a_domain_in_the_config_table_routes_to_its_connection() -> None:
    route, warnings = resolve("alice@acme.com", Settings(sso_domains=ACME_TABLE))
    assert route.params == {"connection": "acme-okta"}
    assert route.announcement == "Signing in with Acme Okta (acme.com)"
    assert route.name == "Acme Okta"
    assert warnings == []


def test_the_config_table_is_read_from_config_toml(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[auth.sso_domains]\n"Acme.com" = { name = "Acme Entra", domain_hint = "acme.com" }\n',
        encoding="utf-8",
    )
    route, _ = resolve("bob@ACME.COM", load_settings(environ={}, path=config))
    assert route.params == {"domain_hint": "acme.com"}
    assert route.announcement == "Signing in with Acme Entra (acme.com)"
    assert str(config) in (route.source or "")


def test_the_config_table_matches_the_exact_domain_only() -> None:
    route, _ = resolve("alice@eng.acme.com", Settings(sso_domains=ACME_TABLE))
    assert route.params == {}
    assert route.announcement == (
        "eng.acme.com has no SSO configured: using the exalsius login page"
    )


def test_an_international_domain_in_the_table_matches_its_punycode_form() -> None:
    table = {"bücher.de": SSORoute(name="Bücher SSO", params={"kc_idp_hint": "buecher"})}
    route, _ = resolve("anna@xn--bcher-kva.de", Settings(sso_domains=table))
    assert route.params == {"kc_idp_hint": "buecher"}
    assert route.announcement == "Signing in with Bücher SSO (bücher.de)"


def test_without_any_route_the_default_login_page_is_announced() -> None:
    route, warnings = resolve("alice@acme.com")
    assert route == Route({}, "acme.com has no SSO configured: using the exalsius login page")
    assert warnings == []


def test_a_routing_plugin_is_asked_first_with_email_and_domain() -> None:
    directory = Directory({"acme.com": SSORoute("Acme Entra", {"domain_hint": "acme.com"})})
    settings = Settings(sso_domains=ACME_TABLE, sso_routes_url=CLOSED_URL)
    route, warnings = resolve("alice@acme.com", settings, directory)
    assert directory.asked == [("alice@acme.com", "acme.com")]
    assert route.params == {"domain_hint": "acme.com"}  # not the table's acme-okta
    assert route.announcement == "Signing in with Acme Entra (acme.com)"
    assert route.source == "a routing plugin"
    assert warnings == []  # the (closed) endpoint was never asked


def test_a_plugin_without_an_answer_falls_through_to_the_table() -> None:
    directory = Directory({})
    route, _ = resolve("alice@acme.com", Settings(sso_domains=ACME_TABLE), directory)
    assert directory.asked == [("alice@acme.com", "acme.com")]
    assert route.params == {"connection": "acme-okta"}


def test_the_first_plugin_answer_wins() -> None:
    first = Directory({"acme.com": SSORoute("First", {"connection": "first"})})
    second = Directory({"acme.com": SSORoute("Second", {"connection": "second"})})
    route, _ = resolve("alice@acme.com", None, first, second)
    assert route.params == {"connection": "first"}
    assert second.asked == []


@pytest.mark.parametrize("broken", [Raising(), Junk()], ids=["raises", "returns-junk"])
def test_a_broken_plugin_is_skipped_with_a_warning(broken: object) -> None:
    directory = Directory({"acme.com": SSORoute("Acme", {"connection": "acme"})})
    route, warnings = resolve("alice@acme.com", None, broken, directory)
    assert route.params == {"connection": "acme"}
    assert len(warnings) == 1
    assert warnings[0].startswith("skipping routing plugin 'exls.routing:plugin0'")


def test_a_raising_plugin_falls_through_to_the_table() -> None:
    route, warnings = resolve("alice@acme.com", Settings(sso_domains=ACME_TABLE), Raising())
    assert route.params == {"connection": "acme-okta"}
    assert warnings == [
        "skipping routing plugin 'exls.routing:plugin0': RuntimeError: directory down"
    ]


def test_a_raising_plugin_is_an_error_with_strict_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXLS_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="directory down"):
        resolve("alice@acme.com", None, Raising())


# --- --organization --------------------------------------------------------------------------


def test_organization_is_sent_without_a_route() -> None:
    route, _ = resolve("alice@acme.com", organization="org_123")
    assert route.params == {"organization": "org_123"}
    assert route.announcement == (
        "acme.com has no SSO configured: using the exalsius login page (organization org_123)"
    )


def test_organization_is_added_to_a_route_and_beats_the_routes_own() -> None:
    table = {"acme.com": SSORoute("Acme", {"connection": "acme", "organization": "org_route"})}
    route, _ = resolve("alice@acme.com", Settings(sso_domains=table), organization="org_cli")
    assert route.params == {"connection": "acme", "organization": "org_cli"}
    assert route.announcement == "Signing in with Acme (acme.com, organization org_cli)"


@pytest.mark.parametrize("bad", ["x" * 257, "org\nevil", "org\x1b[2J", ""])
def test_a_bad_organization_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError) as refused:
        resolve("alice@acme.com", organization=bad)
    assert refused.value.exit_code == EXIT_USAGE
    assert refused.value.message.startswith("--organization / EXLS_AUTH_ORGANIZATION: its value")


# --- what people see --------------------------------------------------------------------------


def test_a_route_name_cannot_put_escape_sequences_on_the_terminal() -> None:
    name = "\x1b]0;pwned\x07Acme\x1b[2J\nOkta\u202e" + "!" * 200
    directory = Directory({"acme.com": SSORoute(name, {"connection": "acme"})})
    route, _ = resolve("alice@acme.com", None, directory)
    assert route.name is not None
    assert route.name.startswith("]0;pwned Acme [2J Okta !!!")
    assert len(route.name) == 80
    assert not any(ord(ch) < 32 or ch == "\u202e" for ch in route.announcement)


def test_a_route_without_a_usable_name_shows_the_domain() -> None:
    directory = Directory({"acme.com": SSORoute("\x1b\x07", {"connection": "acme"})})
    route, _ = resolve("alice@acme.com", None, directory)
    assert route.announcement == "Signing in with acme.com (acme.com)"


def test_a_route_whose_parameters_are_all_refused_announces_the_default_page() -> None:
    directory = Directory({"acme.com": SSORoute("Evil", {"client_id": "other-app"})})
    route, warnings = resolve("alice@acme.com", None, directory)
    assert route.params == {}
    assert route.announcement == (
        "Cannot use the SSO route for acme.com: using the exalsius login page"
    )
    assert len(warnings) == 1


def test_a_route_with_no_parameters_means_no_sso() -> None:
    directory = Directory({"acme.com": SSORoute("Acme", {})})
    settings = Settings(sso_domains=ACME_TABLE)
    route, _ = resolve("alice@acme.com", settings, directory)
    assert route.params == {}  # the plugin's answer wins over the table: no SSO
    assert route.announcement == "acme.com has no SSO configured: using the exalsius login page"
