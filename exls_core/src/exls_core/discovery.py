"""OpenID Provider metadata from discovery, validated and cached.

The document's ``issuer`` must equal the configured issuer exactly (OpenID Connect Discovery
4.3): a mismatch would let one provider impersonate another. Endpoints must use https;
plain http on a loopback host is allowed only when the issuer itself is plain http on
loopback (local development): for a remote issuer, an http://127.0.0.1 endpoint would hand
codes and tokens to whatever local program listens on that port, and an https issuer, even
on loopback, speaks TLS, so every endpoint it names must too. The validated document is
cached on disk (it holds no secrets) so that refresh and logout do not refetch it every time.

Where the OpenID document lacks an optional endpoint exls uses (revocation, device
authorization), the provider's RFC 8414 authorization server metadata is read too, with the
same issuer check and https rules, and what it adds is cached with the document.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from exls_core.config import LOOPBACK_HOSTS, Settings
from exls_core.errors import ExlsError
from exls_core.text import has_control, plain_text

CACHE_TTL = 24 * 3600.0
ENDPOINT_KEYS = (
    "authorization_endpoint",
    "token_endpoint",
    "device_authorization_endpoint",
    "revocation_endpoint",
    "jwks_uri",
    "userinfo_endpoint",
)
# Optional endpoints that RFC 8414 metadata may add when OpenID discovery lacks them.
SUPPLEMENTED = ("revocation_endpoint", "device_authorization_endpoint")
RFC8414_TIMEOUT = 5.0  # the supplement is optional: never wait long for it


class DiscoveryError(ExlsError):
    pass


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname
    return host is not None and host.lower() in LOOPBACK_HOSTS


def _plain_http_allowed(url: str, issuer: str) -> bool:
    """Only a plain-http loopback issuer (local development) may name plain-http loopback
    endpoints: an https issuer speaks TLS, so all of its endpoints must."""
    return urlsplit(issuer).scheme == "http" and _is_loopback(issuer) and _is_loopback(url)


def _parts(url: Any) -> SplitResult | None:
    """The URL's parts when it is a URL with a host (and a valid port), else None."""
    if not isinstance(url, str) or has_control(url) or any(ch.isspace() for ch in url):
        return None  # control characters (escape sequences) or spaces: no URL of anyone's
    try:  # "https://[x", a port that is no number: urllib raises ValueError
        parts = urlsplit(url)
        parts.port  # noqa: B018 (parsed lazily: this is the check)
    except ValueError:
        return None
    return parts if parts.hostname else None


def _check_url(key: str, url: Any, *, issuer: str) -> None:
    parts = _parts(url)
    if parts is None:
        raise DiscoveryError(f"The identity provider's discovery document has an invalid {key}.")
    if parts.scheme == "https" or (parts.scheme == "http" and _plain_http_allowed(url, issuer)):
        return
    raise DiscoveryError(f"The identity provider's {key} is not https: {plain_text(url, 100)}")


def validate(
    document: Any, issuer: str, *, required: tuple[str, ...] = ("token_endpoint", "jwks_uri")
) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise DiscoveryError("The identity provider's discovery document is not a JSON object.")
    found = document.get("issuer")
    if found != issuer:
        same_but_slash = isinstance(found, str) and found.rstrip("/") == issuer.rstrip("/")
        advice = (
            f"set EXLS_AUTH_ISSUER to exactly {plain_text(found, 100)!r} "
            "(the trailing slash matters)"
            if same_but_slash
            else "check EXLS_AUTH_ISSUER"
        )
        raise DiscoveryError(
            f"The identity provider says its issuer is {plain_text(str(found), 100)!r}, "
            f"but exls is configured for {issuer!r}; {advice}."
        )
    for key in required:
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


def rfc8414_url(issuer: str) -> str:
    """RFC 8414 section 3: the well-known part goes between the host and the issuer's path
    (without its terminating "/"): https://host/realms/acme ->
    https://host/.well-known/oauth-authorization-server/realms/acme."""
    parts = urlsplit(issuer)
    path = "/.well-known/oauth-authorization-server" + parts.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _get_document(url: str, timeout: float, *, optional: bool = False) -> Any:
    """GET a metadata document; DiscoveryError saying why not. ``optional`` (RFC 8414):
    None when the provider has no such document (404, 410)."""
    import requests

    from exls_core.http import describe_network_error, new_session, not_followed, read_json

    try:
        with new_session(timeout) as http:
            # No redirect (new_session follows none): one might lead from https to http, and
            # the document names the endpoints and keys everything else trusts.
            response = http.get(url, stream=True, headers={"Accept": "application/json"})
            if optional and response.status_code in (404, 410):
                return None
            if response.status_code != 200:
                answered = f"{url} answered HTTP {response.status_code}{not_followed(response)}"
                if optional:
                    raise DiscoveryError(f"{answered}.")
                raise DiscoveryError(
                    f"OpenID discovery failed: {answered}; check EXLS_AUTH_ISSUER."
                )
            what = "authorization server metadata" if optional else "OpenID discovery"
            return read_json(response, f"{what} endpoint")
    except DiscoveryError:
        raise
    except ExlsError as exc:
        raise DiscoveryError(exc.message) from None
    except requests.RequestException as exc:
        raise DiscoveryError(
            f"Cannot reach the identity provider: {describe_network_error(exc, url)}."
        ) from None


def _supplement(document: dict[str, Any], settings: Settings, warn: Callable[[str], None]) -> bool:
    """Add the SUPPLEMENTED endpoints OpenID discovery lacks from the RFC 8414 metadata.

    True when the answer is final (found, or no such metadata: 404); False when reading it
    failed, which is said in one warning line (then the result is not cached, to retry).
    """
    missing = [key for key in SUPPLEMENTED if key not in document]
    if not missing:
        return True
    url = rfc8414_url(settings.issuer)
    try:
        found = _get_document(url, min(settings.http_timeout, RFC8414_TIMEOUT), optional=True)
        if found is None:
            return True
        validate(found, settings.issuer, required=())
    except DiscoveryError as exc:
        warn(f"ignoring the identity provider's RFC 8414 metadata: {exc.message.rstrip('.')}.")
        return False
    document.update({key: found[key] for key in missing if key in found})
    return True


def _stderr_warning(text: str) -> None:
    from exls_core.ui import TerminalUI

    TerminalUI().warning(text)


def fetch_metadata(
    settings: Settings,
    *,
    use_cache: bool = True,
    warn: Callable[[str], None] = _stderr_warning,
) -> dict[str, Any]:
    """The issuer's validated discovery document (cached for a day), completed from its
    RFC 8414 metadata where optional endpoints are missing (see :func:`_supplement`)."""
    if use_cache and (cached := _read_cache(settings.issuer)) is not None:
        return cached
    found = _get_document(settings.discovery_url, settings.http_timeout)
    document = validate(found, settings.issuer)
    if _supplement(document, settings, warn):
        _write_cache(settings.issuer, document)
    return document
