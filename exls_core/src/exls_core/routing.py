"""SSO routing: which sign-in page an email domain goes to, and the parameters that lead there.

Sources are asked in this order; the first answer wins:

1. routing plugins (entry-point group ``exls.routing``): an enterprise's own directory lookup
   was installed on purpose and knows its users best;
2. the ``[auth.sso_domains]`` table of config.toml, matched on the exact domain::

       [auth.sso_domains]
       "acme.com" = { name = "Acme Okta", connection = "acme-okta" }

3. the routing endpoint ``EXLS_AUTH_SSO_ROUTES_URL`` (see :func:`query_endpoint`).

No answer means the exalsius login page. Either way ``--organization`` (or
``EXLS_AUTH_ORGANIZATION``) adds Auth0's ``organization`` parameter and beats a route's.

A route can only *add* authorization parameters, and only these (:data:`ALLOWED_PARAMS`):
``connection`` and ``organization`` (Auth0), ``domain_hint`` (Entra ID), ``kc_idp_hint``
(Keycloak), ``idp`` (Okta), ``identity_provider`` and ``idp_identifier`` (Cognito), ``hd``
(Google) and ``ui_locales``. They say *where* to sign in, never *how*: the issuer, endpoints,
client id and redirect URI come from config and discovery, and :data:`RESERVED_PARAMS` such as
``client_id``, ``redirect_uri``, ``scope``, ``state``, ``prompt`` or ``acr_values`` belong to
exls and the flows. Any other name, a non-string, empty or over-long value, or a value with
control characters is dropped with a warning that names the parameter and where it came from.
"""

from __future__ import annotations

import hashlib
import json
import time
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from exls_core.email import InvalidEmail, normalize_domain
from exls_core.errors import ExlsError, UsageError
from exls_core.paths import write_json_quietly
from exls_core.plugin import SSORoute

if TYPE_CHECKING:
    from pathlib import Path

    from exls_core.config import Settings

ALLOWED_PARAMS = frozenset(
    {
        "connection",
        "organization",
        "domain_hint",
        "kc_idp_hint",
        "idp",
        "identity_provider",
        "idp_identifier",
        "hd",
        "ui_locales",
    }
)
# Named so the warning can say why; everything outside ALLOWED_PARAMS is refused anyway.
RESERVED_PARAMS = frozenset(
    {
        "client_id",
        "client_secret",
        "client_assertion",
        "client_assertion_type",
        "redirect_uri",
        "response_type",
        "response_mode",
        "scope",
        "state",
        "nonce",
        "code",
        "code_challenge",
        "code_challenge_method",
        "code_verifier",
        "grant_type",
        "device_code",
        "login_hint",
        "id_token_hint",
        "audience",
        "resource",
        "prompt",
        "max_age",
        "acr_values",
        "claims",
        "request",
        "request_uri",
        "registration",
        "issuer",
        "iss",
    }
)
MAX_VALUE = 256
MAX_NAME = 80  # characters of a route's display name that reach the terminal
ENDPOINT_TIMEOUT = 5.0  # seconds at most: routing must never make login feel stuck
DEFAULT_PAGE = "the exalsius login page"


def _default_page(settings: Settings) -> str:
    """Where a login without SSO goes: the configured issuer's own page."""
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
    """What routing needs of the plugin registry (exls_core.plugins.Registry)."""

    def sso_route(self, email: str, domain: str) -> SSORoute | None: ...


class RouteLookupError(ExlsError):
    """The routing endpoint could not say where a domain signs in."""


@dataclass
class _Answer:
    route: SSORoute | None = None
    source: str | None = None
    failed: bool = False


# --- vetting -----------------------------------------------------------------------------------


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch).startswith("C") for ch in text)


def _value_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"its value is a {type(value).__name__}, not a string"
    if not value:
        return "its value is empty"
    if len(value) > MAX_VALUE:
        return f"its value is longer than {MAX_VALUE} characters"
    if _has_control(value):
        return "its value contains control characters"
    return None


def _param_problem(name: Any, value: Any) -> str | None:
    if not isinstance(name, str):
        return "its name is not a string"
    if name.lower() in RESERVED_PARAMS:
        return "it is reserved: a route can only add parameters such as connection"
    if name not in ALLOWED_PARAMS:
        return f"it is not an SSO routing parameter (allowed: {', '.join(sorted(ALLOWED_PARAMS))})"
    return _value_problem(value)


def vet_params(params: Any, source: str, warn: Callable[[str], None]) -> dict[str, str]:
    """The parameters a route may add; each refused one is reported through ``warn``."""
    if not isinstance(params, Mapping):
        warn(f"ignoring the SSO parameters from {source}: they are not a table of strings")
        return {}
    vetted: dict[str, str] = {}
    for name, value in params.items():
        problem = _param_problem(name, value)
        if problem:
            shown = repr(name)[: MAX_NAME // 2] if isinstance(name, str) else repr(name)[:40]
            warn(f"ignoring SSO parameter {shown} from {source}: {problem}")
            continue
        vetted[name] = value
    return vetted


def _display_name(name: Any, fallback: str) -> str:
    """A route's name made safe for a terminal: no escape sequences, one short line."""
    if not isinstance(name, str):
        return fallback
    visible = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in name)
    text = " ".join(visible.split())
    return text[:MAX_NAME] or fallback


def _shown_domain(domain: str) -> str:
    try:
        return domain.encode("ascii").decode("idna")  # xn--bcher-kva.de -> bücher.de
    except UnicodeError:
        return domain


# --- sources -----------------------------------------------------------------------------------


def _from_table(domain: str, settings: Settings) -> tuple[SSORoute, str] | None:
    for key, row in settings.sso_domains.items():
        try:
            matches = normalize_domain(key) == domain
        except InvalidEmail:
            matches = key == domain
        if matches:
            route = SSORoute(name=row.name, params=row.params)
            return route, f"{settings.source} [auth.sso_domains] {key}"
    return None


def _shown_url(url: str) -> str:
    parts = urlsplit(url)  # the query may carry a key: keep it out of messages
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def parse_answer(body: Any, domain: str) -> SSORoute | None:
    """An endpoint's JSON answer as a route, None for "no SSO", or RouteLookupError for junk."""
    expected = 'expected {"name": "...", "params": {"connection": "..."}} or {}'
    if not isinstance(body, dict):
        raise RouteLookupError(f"it did not answer with a JSON object ({expected})")
    name = body.get("name", domain)
    params = body.get("params", {})
    if not isinstance(name, str) or not isinstance(params, dict):
        raise RouteLookupError(f"its answer has the wrong shape ({expected})")
    return SSORoute(name=name, params=params) if params else None


def _cache_path(url: str, domain: str, cache: Path | None) -> Path:
    from exls_core.paths import cache_dir

    digest = hashlib.sha256(f"{url}\0{domain}".encode()).hexdigest()[:32]
    return (cache if cache is not None else cache_dir()) / f"sso-route-{digest}.json"


_MISS = object()


def _url_digest(url: str) -> str:
    """What the cache keeps of the routes URL: its query may carry an API key."""
    return hashlib.sha256(url.encode()).hexdigest()


def _read_cache(path: Path, url: str, domain: str, ttl: float, now: float) -> Any:
    """The cached route (None for a cached "no SSO"), or _MISS."""
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        if entry["url_sha256"] != _url_digest(url) or entry["domain"] != domain:
            return _MISS
        age = now - float(entry["fetched_at"])
        if not 0 <= age < ttl:
            return _MISS
        return parse_answer(entry["answer"], domain)
    except (OSError, ValueError, KeyError, TypeError, RouteLookupError):
        return _MISS


def _write_cache(path: Path, url: str, domain: str, route: SSORoute | None, now: float) -> None:
    answer = {"name": route.name, "params": dict(route.params)} if route else {}
    entry = {"url_sha256": _url_digest(url), "domain": domain, "fetched_at": now, "answer": answer}
    write_json_quietly(path, entry)  # a read-only cache only costs a request next time


def _fetch(url: str, domain: str, timeout: float) -> SSORoute | None:
    import requests

    from exls_core.http import describe_network_error, new_session, read_json

    shown = _shown_url(url)
    try:
        with new_session(timeout) as http:
            response = http.get(
                url,
                params={"domain": domain},
                headers={"Accept": "application/json"},
                stream=True,
                allow_redirects=False,  # the configured URL is the endpoint, not a hint
            )
            if response.status_code in (204, 404):
                return None
            if response.status_code != 200:
                raise RouteLookupError(f"{shown} answered HTTP {response.status_code}")
            body = read_json(response, "SSO routing endpoint")
    except requests.RequestException as exc:
        raise RouteLookupError(describe_network_error(exc, shown)) from None
    except RouteLookupError:
        raise
    except ExlsError as exc:
        raise RouteLookupError(exc.message.rstrip(".")) from None
    try:
        return parse_answer(body, domain)
    except RouteLookupError as exc:
        raise RouteLookupError(f"{shown}: {exc.message}") from None


def query_endpoint(
    url: str,
    domain: str,
    *,
    timeout: float,
    ttl: float,
    clock: Callable[[], float] = time.time,
    cache: Path | None = None,
) -> SSORoute | None:
    """Ask the routing endpoint where ``domain`` signs in; answers are cached for ``ttl``.

    The request is ``GET <url>?domain=acme.com`` with ``Accept: application/json``; only the
    domain is sent, never the address. Answers:

    * ``200`` with ``{"name": "Acme Okta", "params": {"connection": "acme-okta"}}``: a route.
      ``name`` is what people see (default: the domain); ``params`` are authorization
      parameters with string values, vetted like every route's.
    * ``404``, ``204``, or ``200`` with ``{}`` (or empty ``params``): the domain has no SSO.
    * Anything else (another status, a redirect, not JSON, another shape, no answer within
      ``timeout``) raises RouteLookupError.

    Routes and "no SSO" answers are cached on disk (``cache``, default the exls cache
    directory); failures are not, so the next login asks again.
    """
    path = _cache_path(url, domain, cache)
    cached = _read_cache(path, url, domain, ttl, clock())
    if cached is not _MISS:
        route: SSORoute | None = cached
        return route
    route = _fetch(url, domain, timeout)
    _write_cache(path, url, domain, route, clock())
    return route


def _find(
    email: str,
    domain: str,
    settings: Settings,
    plugins: RoutingPlugins,
    warn: Callable[[str], None],
    clock: Callable[[], float],
) -> _Answer:
    route = plugins.sso_route(email, domain)
    if route is not None:
        return _Answer(route, "a routing plugin")
    if (row := _from_table(domain, settings)) is not None:
        return _Answer(*row)
    url = settings.sso_routes_url
    if not url:
        return _Answer()
    timeout = min(settings.http_timeout, ENDPOINT_TIMEOUT)
    try:
        route = query_endpoint(
            url, domain, timeout=timeout, ttl=settings.sso_routes_ttl, clock=clock
        )
    except RouteLookupError as exc:
        warn(f"cannot look up SSO for {domain}: {exc.message}; using {_default_page(settings)}")
        return _Answer(failed=True)
    return _Answer(route, f"the routing endpoint {_shown_url(url)}")


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

    answer = _find(email, domain, settings, registry, warn, clock)
    routed: dict[str, str] = {}
    if answer.route is not None and answer.source is not None:
        routed = vet_params(answer.route.params, answer.source, warn)
    params = dict(routed)
    org = ""
    if organization:
        params["organization"] = organization  # the person's explicit choice beats a route's
        org = f"organization {organization}"

    if answer.route is not None and routed:
        name = _display_name(answer.route.name, shown)
        where = f"{shown}, {org}" if org else shown
        return Route(params, f"Signing in with {name} ({where})", name, answer.source)
    page = _default_page(settings)
    if answer.failed:
        text = f"Could not look up SSO for {shown}: using {page}"
    elif answer.route is not None and answer.route.params:
        text = f"Cannot use the SSO route for {shown}: using {page}"
    else:
        text = f"{shown} has no SSO configured: using {page}"
    return Route(params, f"{text} ({org})" if org else text, None, answer.source)
