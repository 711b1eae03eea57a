"""OpenID Provider metadata from discovery, validated and cached.

The document's ``issuer`` must equal the configured issuer exactly (OpenID Connect Discovery
4.3): a mismatch would let one provider impersonate another. Endpoints must use https;
plain http on a loopback host is allowed only when the issuer itself is on loopback (local
development): for a remote issuer, an http://127.0.0.1 endpoint would hand codes and tokens
to whatever local program listens on that port. The validated document is cached on disk
(it holds no secrets) so that refresh and logout do not refetch it every time.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from exls_core.config import LOOPBACK_HOSTS, Settings
from exls_core.errors import ExlsError

CACHE_TTL = 24 * 3600.0
ENDPOINT_KEYS = (
    "authorization_endpoint",
    "token_endpoint",
    "device_authorization_endpoint",
    "revocation_endpoint",
    "jwks_uri",
)


class DiscoveryError(ExlsError):
    pass


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname
    return host is not None and host.lower() in LOOPBACK_HOSTS


def _check_url(key: str, url: Any, *, issuer: str) -> None:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or not parts.hostname:
        raise DiscoveryError(f"The identity provider's discovery document has an invalid {key}.")
    if parts.scheme == "https" or (
        parts.scheme == "http" and _is_loopback(url) and _is_loopback(issuer)
    ):
        return
    raise DiscoveryError(f"The identity provider's {key} is not https: {url[:100]}")


def validate(document: Any, issuer: str) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise DiscoveryError("The identity provider's discovery document is not a JSON object.")
    found = document.get("issuer")
    if found != issuer:
        raise DiscoveryError(
            f"The identity provider says its issuer is {str(found)[:100]!r}, "
            f"but exls is configured for {issuer!r}; check EXLS_AUTH_ISSUER."
        )
    for key in ("token_endpoint", "jwks_uri"):
        if key not in document:
            raise DiscoveryError(f"The identity provider's discovery document has no {key}.")
    for key in ENDPOINT_KEYS:
        if key in document:
            _check_url(key, document[key], issuer=issuer)
    return document


def _cache_path(issuer: str) -> str:
    from exls_core import cache

    return cache.entry_path("discovery", issuer)


def _read_cache(issuer: str) -> dict[str, Any] | None:
    from exls_core import cache

    document = cache.load(_cache_path(issuer), issuer, ttl=CACHE_TTL)
    try:
        return validate(document, issuer) if document is not None else None
    except DiscoveryError:  # validated again: the rules may have changed since it was cached
        return None


def _write_cache(issuer: str, document: dict[str, Any]) -> None:
    from exls_core import cache

    cache.store(_cache_path(issuer), issuer, document)


def fetch_metadata(settings: Settings, *, use_cache: bool = True) -> dict[str, Any]:
    """The issuer's validated discovery document (cached for a day)."""
    if use_cache and (cached := _read_cache(settings.issuer)) is not None:
        return cached
    import requests

    from exls_core.http import describe_network_error, new_session, read_json

    url = settings.discovery_url
    try:
        with new_session(settings.http_timeout) as http:
            # A redirect is followed: the document's issuer must still match exactly.
            response = http.get(
                url, stream=True, headers={"Accept": "application/json"}, allow_redirects=True
            )
            if response.status_code != 200:
                raise DiscoveryError(
                    f"OpenID discovery failed: {url} answered HTTP {response.status_code}; "
                    "check EXLS_AUTH_ISSUER."
                )
            document = read_json(response, "OpenID discovery endpoint")
    except DiscoveryError:
        raise
    except ExlsError as exc:
        raise DiscoveryError(exc.message) from None
    except requests.RequestException as exc:
        raise DiscoveryError(
            f"Cannot reach the identity provider: {describe_network_error(exc, url)}."
        ) from None
    document = validate(document, settings.issuer)
    _write_cache(settings.issuer, document)
    return document
