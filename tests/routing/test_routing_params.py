"""A route can only add allowed authorization parameters; everything else is refused, loudly."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exls_core.config import Settings
from exls_core.plugin import FlowRequest, SSORoute, hookimpl
from exls_core.registry import Registry, new_plugin_manager
from exls_core.routing import ALLOWED_PARAMS, MAX_VALUE, RESERVED_PARAMS, resolve_route, vet_params

SOURCE = "the test source"


def vet(params: Any) -> tuple[dict[str, str], list[str]]:
    warnings: list[str] = []
    return vet_params(params, SOURCE, warnings.append), warnings


def test_the_allow_list_is_the_documented_one() -> None:
    assert {
        "connection",
        "organization",
        "domain_hint",
        "kc_idp_hint",
        "idp",
        "identity_provider",
        "idp_identifier",
        "hd",
        "ui_locales",
    } == ALLOWED_PARAMS
    assert not ALLOWED_PARAMS & RESERVED_PARAMS


@pytest.mark.parametrize("name", sorted(ALLOWED_PARAMS))
def test_allowed_parameters_pass_unchanged(name: str) -> None:
    assert vet({name: "value-1 é"}) == ({name: "value-1 é"}, [])


@pytest.mark.parametrize("name", sorted(RESERVED_PARAMS))
def test_reserved_parameters_are_refused_naming_parameter_and_source(name: str) -> None:
    vetted, warnings = vet({name: "attacker", "connection": "acme"})
    assert vetted == {"connection": "acme"}
    assert warnings == [
        f"ignoring SSO parameter {name!r} from {SOURCE}: it is reserved: "
        "a route can only add parameters such as connection"
    ]


@pytest.mark.parametrize("name", ["Client_ID", "REDIRECT_URI", "Scope"])
def test_reserved_names_in_another_case_are_refused_as_reserved(name: str) -> None:
    vetted, warnings = vet({name: "x"})
    assert vetted == {}
    assert "it is reserved" in warnings[0]


@pytest.mark.parametrize("name", ["foo", "Connection", "connection ", "screen_hint", "x" * 500])
def test_names_outside_the_allow_list_are_refused(name: str) -> None:
    vetted, warnings = vet({name: "x"})
    assert vetted == {}
    assert len(warnings) == 1
    assert warnings[0].startswith(f"ignoring SSO parameter {name!r}"[:60])
    assert f"from {SOURCE}: it is not an SSO routing parameter (allowed: connection," in warnings[0]
    assert len(warnings[0]) < 400  # an absurd name does not flood the terminal


def test_values_up_to_the_limit_pass_and_longer_ones_are_refused() -> None:
    assert vet({"connection": "c" * MAX_VALUE}) == ({"connection": "c" * MAX_VALUE}, [])
    vetted, warnings = vet({"connection": "c" * (MAX_VALUE + 1)})
    assert vetted == {}
    assert warnings == [
        f"ignoring SSO parameter 'connection' from {SOURCE}: "
        "its value is longer than 256 characters"
    ]


@pytest.mark.parametrize(
    "bad", ["a\nb", "a\rb", "a\x00", "\x1b[31m", "a\x7f", "a\u202eb", "\u200b"]
)
def test_values_with_control_characters_are_refused(bad: str) -> None:
    vetted, warnings = vet({"domain_hint": bad})
    assert vetted == {}
    assert warnings == [
        f"ignoring SSO parameter 'domain_hint' from {SOURCE}: its value contains control characters"
    ]


@pytest.mark.parametrize(("value", "kind"), [(42, "int"), (None, "NoneType"), (["a"], "list")])
def test_values_that_are_not_strings_are_refused(value: object, kind: str) -> None:
    vetted, warnings = vet({"connection": value})
    assert vetted == {}
    assert warnings == [
        f"ignoring SSO parameter 'connection' from {SOURCE}: its value is a {kind}, not a string"
    ]


def test_an_empty_value_and_a_non_string_name_are_refused() -> None:
    vetted, warnings = vet({"connection": "", 7: "x", "hd": "acme.com"})
    assert vetted == {"hd": "acme.com"}
    assert warnings == [
        f"ignoring SSO parameter 'connection' from {SOURCE}: its value is empty",
        f"ignoring SSO parameter 7 from {SOURCE}: its name is not a string",
    ]


def test_parameters_that_are_not_a_table_are_refused() -> None:
    assert vet(["connection", "acme"]) == (
        {},
        [f"ignoring the SSO parameters from {SOURCE}: they are not a table of strings"],
    )


@given(st.dictionaries(st.one_of(st.sampled_from(sorted(ALLOWED_PARAMS)), st.text()), st.text()))
def test_whatever_a_route_says_only_clean_allowed_parameters_survive(
    params: dict[str, str],
) -> None:
    vetted, warnings = vet(params)
    assert set(vetted) <= ALLOWED_PARAMS
    assert len(vetted) + len(warnings) == len(params)
    for value in vetted.values():
        assert 0 < len(value) <= MAX_VALUE
        assert not any(unicodedata.category(ch).startswith("C") for ch in value)


# --- through resolve_route: the warning names where the route came from ---------------------


class Hijacker:
    """A routing plugin that tries to take over the login."""

    @hookimpl
    def exls_sso_route(self, email: str, domain: str) -> SSORoute:
        return SSORoute(
            "Acme",
            {
                "connection": "acme",
                "client_id": "other-app",
                "redirect_uri": "https://evil.example/cb",
                "issuer": "https://evil.example/",
                "login_hint": "mallory@evil.example",
                "audience": "https://evil.example/api",
                "scope": "openid admin",
            },
        )


def test_a_plugin_cannot_change_client_redirect_issuer_or_login_hint() -> None:
    pm = new_plugin_manager()
    pm.register(Hijacker(), name="exls.routing:hijacker")
    warnings: list[str] = []
    settings = Settings()
    route = resolve_route(
        "alice@acme.com",
        settings,
        Registry(pm=pm, flows={}, broken={}, warn=warnings.append),
        organization=None,
        warn=warnings.append,
    )
    assert route.params == {"connection": "acme"}
    assert len(warnings) == 6
    assert all("from a routing plugin: it is reserved" in w for w in warnings)
    request = FlowRequest(
        issuer=settings.issuer,
        metadata={},
        client_id=settings.client_id,
        scopes=settings.scopes,
        nonce="n",
        ui=None,  # type: ignore[arg-type]
        http=None,  # type: ignore[arg-type]
        audience=settings.audience,
        email="alice@acme.com",
        extra_params=route.params,
    )
    assert request.authorization_params() == {
        "connection": "acme",
        "audience": settings.audience,
        "login_hint": "alice@acme.com",
    }


def test_a_config_table_warning_names_the_file_and_domain() -> None:
    table = {"acme.com": SSORoute("Acme", {"connection": "acme", "prompt": "none"})}
    settings = Settings(sso_domains=table, source="/etc/exalsius/config.toml")
    warnings: list[str] = []
    route = resolve_route(
        "alice@acme.com",
        settings,
        Registry(pm=new_plugin_manager(), flows={}, broken={}, warn=warnings.append),
        organization=None,
        warn=warnings.append,
    )
    assert route.params == {"connection": "acme"}
    assert warnings == [
        "ignoring SSO parameter 'prompt' from /etc/exalsius/config.toml [auth.sso_domains] "
        "acme.com: it is reserved: a route can only add parameters such as connection"
    ]
