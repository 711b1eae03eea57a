"""The SSO routing endpoint (``EXLS_AUTH_SSO_ROUTES_URL``): one GET, answers cached for a TTL."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from exls_core import cache as json_cache
from exls_core.config import SSORoute
from exls_core.errors import ExlsError

if TYPE_CHECKING:
    import os

ENDPOINT_TIMEOUT = 5.0  # seconds at most: routing must never make login feel stuck


class RouteLookupError(ExlsError):
    """The routing endpoint could not say where a domain signs in."""


def shown_url(url: str) -> str:
    """``url`` without its query: the query may carry a key, keep it out of messages."""
    parts = urlsplit(url)
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


def _fetch(url: str, domain: str, timeout: float) -> SSORoute | None:
    import requests

    from exls_core.http import describe_network_error, new_session, read_json

    shown = shown_url(url)
    try:
        with new_session(timeout) as http:
            response = http.get(
                url,
                params={"domain": domain},
                headers={"Accept": "application/json"},
                stream=True,  # the configured URL is the endpoint: no redirects (the session's)
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
    cache: str | os.PathLike[str] | None = None,
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

    Routes and "no SSO" answers are cached in ``cache`` (a directory; default: exls's cache
    directory, private to the user, as the URL's query may carry a key); failures are not,
    so the next login asks again.
    """
    import hashlib

    # The URL's query may carry a key: the cache keeps only its digest.
    key = {"url_sha256": hashlib.sha256(url.encode()).hexdigest(), "domain": domain}
    path = json_cache.entry_path("sso-route", key, cache)
    cached = json_cache.load(path, key, ttl=ttl, clock=clock)
    if cached is not None:
        try:
            return parse_answer(cached, domain)
        except RouteLookupError:
            pass  # damaged: ask again
    route = _fetch(url, domain, timeout)
    answer = {"name": route.name, "params": dict(route.params)} if route else {}
    json_cache.store(path, key, answer, clock=clock)  # a read-only cache only costs a request
    return route
