"""SSO routing: which sign-in page an email domain goes to, and the parameters that lead there.

Sources are asked in this order; the first answer wins:

1. routing plugins (entry-point group ``exls.routing``): an enterprise's own directory lookup
   was installed on purpose and knows its users best;
2. the ``[auth.sso_domains]`` table of config.toml, matched on the exact domain::

       [auth.sso_domains]
       "acme.com" = { name = "Acme Okta", connection = "acme-okta" }

3. the routing endpoint ``EXLS_AUTH_SSO_ROUTES_URL`` (:mod:`exls_core.routing.endpoint`).

No answer means the identity provider's own login page. Either way ``--organization`` (or
``EXLS_AUTH_ORGANIZATION``) adds Auth0's ``organization`` parameter and beats a route's.
What a route may add is vetted by :mod:`exls_core.routing.params`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from exls_core.config import SSORoute
from exls_core.email.address import InvalidEmail, normalize_domain
from exls_core.errors import UsageError
from exls_core.routing.endpoint import (
    ENDPOINT_TIMEOUT,
    RouteLookupError,
    parse_answer,
    query_endpoint,
    shown_url,
)
from exls_core.routing.params import ALLOWED_PARAMS, MAX_VALUE, RESERVED_PARAMS, vet_params
from exls_core.routing.params import value_problem as _value_problem
from exls_core.text import plain_text

if TYPE_CHECKING:
    from exls_core.config import Settings

__all__ = [
    "ALLOWED_PARAMS",
    "MAX_VALUE",
    "RESERVED_PARAMS",
    "Route",
    "RouteLookupError",
    "RoutingPlugins",
    "parse_answer",
    "query_endpoint",
    "resolve_route",
    "vet_params",
]

MAX_NAME = 80  # characters of a route's display name that reach the terminal
DEFAULT_PAGE = "the exalsius login page"


def _default_page(settings: Settings) -> str:
    """Where a login without SSO goes: the configured issuer's own page."""
    from urllib.parse import urlsplit

    from exls_core.config import DEFAULT_ISSUER

    if settings.issuer == DEFAULT_ISSUER:
        return DEFAULT_PAGE
    host = urlsplit(settings.issuer).hostname or settings.issuer
    return f"the login page of {host}"


@dataclass(frozen=True)
class Route:
    """Where this login goes: vetted extra authorization parameters and the line to announce."""

    params: dict[str, str]
    announcement: str
    name: str | None = None
    """The SSO provider's display name; None for the exalsius login page."""
    source: str | None = None
    """Which source answered, for messages (``a routing plugin``, the config file...)."""


class RoutingPlugins(Protocol):
    """What routing needs of the plugin registry (exls_core.registry.Registry)."""

    def sso_route(self, email: str, domain: str) -> SSORoute | None: ...


def _shown_domain(domain: str) -> str:
    try:
        return domain.encode("ascii").decode("idna")  # xn--bcher-kva.de -> bücher.de
    except UnicodeError:
        return domain


def _from_table(domain: str, settings: Settings) -> tuple[SSORoute, str] | None:
    for key, row in settings.sso_domains.items():
        try:
            matches = normalize_domain(key) == domain
        except InvalidEmail:
            matches = key == domain
        if matches:
            return row, f"{settings.source} [auth.sso_domains] {key}"
    return None


def _find(
    email: str,
    domain: str,
    settings: Settings,
    plugins: RoutingPlugins,
    clock: Callable[[], float],
) -> tuple[SSORoute | None, str | None]:
    """The first source's answer (None: "no SSO") and the source's name (None: no source);
    RouteLookupError when the endpoint failed."""
    route = plugins.sso_route(email, domain)
    if route is not None:
        return route, "a routing plugin"
    if (row := _from_table(domain, settings)) is not None:
        return row
    url = settings.sso_routes_url
    if not url:
        return None, None
    timeout = min(settings.http_timeout, ENDPOINT_TIMEOUT)
    route = query_endpoint(url, domain, timeout=timeout, ttl=settings.sso_routes_ttl, clock=clock)
    return route, f"the routing endpoint {shown_url(url)}"


def resolve_route(
    email: str,
    settings: Settings,
    registry: RoutingPlugins,
    *,
    organization: str | None,
    warn: Callable[[str], None],
    clock: Callable[[], float] = time.time,
) -> Route:
    """The route for ``email`` (already validated): plugins, then config table, then endpoint.

    Raises UsageError when ``organization`` (from --organization or EXLS_AUTH_ORGANIZATION)
    is not a sensible value; a bad route is never fatal, only warned about.
    """
    domain = email.rpartition("@")[2].lower()
    shown = _shown_domain(domain)
    if organization is not None and (problem := _value_problem(organization)):
        raise UsageError(f"--organization / EXLS_AUTH_ORGANIZATION: {problem}.")

    failed = False
    try:
        route, source = _find(email, domain, settings, registry, clock)
    except RouteLookupError as exc:
        warn(f"cannot look up SSO for {domain}: {exc.message}; using {_default_page(settings)}")
        route, source, failed = None, None, True
    routed = vet_params(route.params, source, warn) if route and source else {}
    params = dict(routed)
    org = ""
    if organization:
        params["organization"] = organization  # the person's explicit choice beats a route's
        org = f"organization {organization}"

    if route is not None and routed:
        name = plain_text(route.name, MAX_NAME) or shown
        where = f"{shown}, {org}" if org else shown
        return Route(params, f"Signing in with {name} ({where})", name, source)
    page = _default_page(settings)
    if failed:
        text = f"Could not look up SSO for {shown}: using {page}"
    elif route is not None and route.params:
        text = f"Cannot use the SSO route for {shown}: using {page}"
    else:
        text = f"{shown} has no SSO configured: using {page}"
    return Route(params, f"{text} ({org})" if org else text, None, source)
