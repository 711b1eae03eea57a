"""OpenID discovery: issuer must match, endpoints must be https (loopback excepted), cached."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from exls_core.config import Settings
from exls_core.discovery import DiscoveryError, fetch_metadata, rfc8414_url, validate
from testkit.http_server import FakeServer, QuietHandler


class Provider(QuietHandler):
    """Serves ``document`` at the OpenID discovery path and ``oauth`` (when set) at the RFC
    8414 path of ``issuer``; 404 elsewhere. ``hits`` counts requests by path."""

    issuer = ""
    document: Any = None
    oauth: Any = None
    status = 200
    oauth_status = 200
    hits: Counter[str] = Counter()

    def do_GET(self) -> None:
        type(self).hits[self.path] += 1
        issuer_path = urlsplit(self.issuer).path.rstrip("/")
        if self.path == issuer_path + "/.well-known/openid-configuration":
            status, document = self.status, self.document
        elif self.path == "/.well-known/oauth-authorization-server" + issuer_path and (
            self.oauth is not None
        ):
            status, document = self.oauth_status, self.oauth
        else:
            status, document = 404, {"error": "not_found"}
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        self.reply(status, body)


def serve(issuer: str, **extra: Any) -> None:
    Provider.issuer = issuer
    Provider.document = {
        "issuer": issuer,
        "token_endpoint": issuer + "/token",
        "jwks_uri": issuer + "/jwks",
        "authorization_endpoint": issuer + "/auth",
        **extra,
    }
    Provider.oauth, Provider.status, Provider.oauth_status = None, 200, 200
    Provider.hits = Counter()


@pytest.fixture
def provider() -> Iterator[str]:
    with FakeServer(Provider, name="discovery") as server:
        serve(server.base)
        yield server.base


def test_fetches_validates_and_caches(provider: str) -> None:
    settings = Settings(issuer=provider)
    assert fetch_metadata(settings)["token_endpoint"] == provider + "/token"
    assert fetch_metadata(settings)["issuer"] == provider
    assert Provider.hits["/.well-known/openid-configuration"] == 1
    fetch_metadata(settings, use_cache=False)
    assert Provider.hits["/.well-known/openid-configuration"] == 2


def test_issuer_mismatch_is_refused_and_not_cached(provider: str) -> None:
    Provider.document = dict(Provider.document, issuer="https://evil.example")
    with pytest.raises(DiscoveryError, match=r"says its issuer is 'https://evil\.example'"):
        fetch_metadata(Settings(issuer=provider))
    with pytest.raises(DiscoveryError):
        fetch_metadata(Settings(issuer=provider))
    assert Provider.hits["/.well-known/openid-configuration"] == 2


@pytest.mark.parametrize(
    ("status", "document", "message"),
    [
        (404, {}, "answered HTTP 404"),
        (200, b"<html>login</html>", "did not answer with JSON"),
        (200, [1, 2], "not a JSON object"),
        (200, b"x" * (1024 * 1024 + 10), "too large"),
    ],
)
def test_bad_answers_are_clear_errors(
    provider: str, status: int, document: Any, message: str
) -> None:
    Provider.status, Provider.document = status, document
    with pytest.raises(DiscoveryError, match=message):
        fetch_metadata(Settings(issuer=provider))


def test_unreachable_provider() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DiscoveryError, match="Cannot reach the identity provider: cannot connect"):
        fetch_metadata(Settings(issuer=f"http://127.0.0.1:{port}"))


@pytest.mark.parametrize(
    "endpoint",
    ["http://idp.example.com/token", "javascript:alert(1)", "", 42],
)
def test_endpoints_must_be_https(endpoint: Any) -> None:
    doc = {
        "issuer": "https://idp.example.com",
        "token_endpoint": endpoint,
        "jwks_uri": "https://idp.example.com/j",
    }
    with pytest.raises(DiscoveryError, match="token_endpoint"):
        validate(doc, "https://idp.example.com")


def test_missing_required_endpoint() -> None:
    with pytest.raises(DiscoveryError, match="no jwks_uri"):
        validate(
            {"issuer": "https://i.example", "token_endpoint": "https://i.example/t"},
            "https://i.example",
        )


def test_a_trailing_slash_difference_says_exactly_what_to_set(provider: str) -> None:
    serve(provider + "/")
    with pytest.raises(DiscoveryError, match=r"set EXLS_AUTH_ISSUER to exactly 'http://[^']+/' "):
        fetch_metadata(Settings(issuer=provider))


# --- RFC 8414 authorization server metadata, where OpenID discovery lacks an endpoint


@pytest.mark.parametrize(
    ("issuer", "url"),
    [
        ("https://host/o", "https://host/.well-known/oauth-authorization-server/o"),
        ("https://host/o/", "https://host/.well-known/oauth-authorization-server/o"),
        (
            "https://host/realms/acme",
            "https://host/.well-known/oauth-authorization-server/realms/acme",
        ),
        (
            "https://tenant.auth0.com/",
            "https://tenant.auth0.com/.well-known/oauth-authorization-server",
        ),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/.well-known/oauth-authorization-server"),
    ],
)
def test_rfc8414_url_inserts_the_well_known_part_before_the_path(issuer: str, url: str) -> None:
    assert rfc8414_url(issuer) == url


OAUTH_PATH = "/.well-known/oauth-authorization-server"


@pytest.mark.parametrize("path", ["", "/realms/acme", "/o/"])
def test_missing_endpoints_come_from_rfc8414_metadata_and_are_cached(
    provider: str, path: str
) -> None:
    issuer = provider + path
    serve(issuer)
    Provider.oauth = {
        "issuer": issuer,
        "token_endpoint": issuer + "/other-token",  # present in discovery: not taken
        "revocation_endpoint": issuer + "/revoke",
        "device_authorization_endpoint": issuer + "/device",
    }
    warnings: list[str] = []
    document = fetch_metadata(Settings(issuer=issuer), warn=warnings.append)
    assert document["revocation_endpoint"] == issuer + "/revoke"
    assert document["device_authorization_endpoint"] == issuer + "/device"
    assert document["token_endpoint"] == issuer + "/token"
    assert warnings == []
    assert fetch_metadata(Settings(issuer=issuer), warn=warnings.append) == document
    assert Provider.hits[OAUTH_PATH + path.rstrip("/")] == 1  # the second answer was cached


def test_rfc8414_is_not_read_when_discovery_has_both_endpoints(provider: str) -> None:
    serve(
        provider, revocation_endpoint=provider + "/r", device_authorization_endpoint=provider + "/d"
    )
    Provider.oauth = {"issuer": provider, "revocation_endpoint": provider + "/other"}
    assert fetch_metadata(Settings(issuer=provider))["revocation_endpoint"] == provider + "/r"
    assert Provider.hits[OAUTH_PATH] == 0


def test_no_rfc8414_metadata_is_no_problem(provider: str) -> None:
    warnings: list[str] = []
    document = fetch_metadata(Settings(issuer=provider), warn=warnings.append)
    assert "revocation_endpoint" not in document and warnings == []
    fetch_metadata(Settings(issuer=provider), warn=warnings.append)
    assert Provider.hits[OAUTH_PATH] == 1  # a 404 is an answer: cached with the document


@pytest.mark.parametrize(
    ("oauth", "status", "reason"),
    [
        (
            {"issuer": "https://evil.example", "revocation_endpoint": "https://evil.example/r"},
            200,
            "says its issuer is 'https://evil.example'",
        ),
        ({"revocation_endpoint": "x"}, 200, "says its issuer is 'None'"),
        ("ISSUER+/revoke-over-http", 200, "revocation_endpoint is not https"),
        ({"error": "server_error"}, 500, "answered HTTP 500"),
        (b"<html>", 200, "did not answer with JSON"),
        ([1], 200, "not a JSON object"),
    ],
)
def test_bad_rfc8414_metadata_is_one_warning_and_ignored(
    provider: str, oauth: Any, status: int, reason: str
) -> None:
    if oauth == "ISSUER+/revoke-over-http":
        oauth = {"issuer": provider, "revocation_endpoint": "http://idp.example.com/revoke"}
    Provider.oauth, Provider.oauth_status = oauth, status
    warnings: list[str] = []
    document = fetch_metadata(Settings(issuer=provider), warn=warnings.append)
    assert "revocation_endpoint" not in document
    assert len(warnings) == 1 and warnings[0].startswith(
        "ignoring the identity provider's RFC 8414 metadata: "
    ), warnings
    assert reason in warnings[0]
    fetch_metadata(Settings(issuer=provider), warn=warnings.append)
    assert Provider.hits[OAUTH_PATH] == 2  # not cached: the next command tries again
