"""OpenID discovery: issuer must match, endpoints must be https (loopback excepted), cached."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from exls_core.config import Settings
from exls_core.discovery import DiscoveryError, fetch_metadata, validate
from testkit.http_server import FakeServer, QuietHandler


class Provider(QuietHandler):
    document: Any = None
    status = 200
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        body = (
            self.document
            if isinstance(self.document, bytes)
            else json.dumps(self.document).encode()
        )
        self.reply(self.status, body)


@pytest.fixture
def provider() -> Iterator[str]:
    with FakeServer(Provider, name="discovery") as server:
        issuer = server.base
        Provider.document = {
            "issuer": issuer,
            "token_endpoint": issuer + "/token",
            "jwks_uri": issuer + "/jwks",
            "authorization_endpoint": issuer + "/auth",
        }
        Provider.status, Provider.hits = 200, 0
        yield issuer


def test_fetches_validates_and_caches(provider: str) -> None:
    settings = Settings(issuer=provider)
    assert fetch_metadata(settings)["token_endpoint"] == provider + "/token"
    assert fetch_metadata(settings)["issuer"] == provider
    assert Provider.hits == 1
    fetch_metadata(settings, use_cache=False)
    assert Provider.hits == 2


def test_issuer_mismatch_is_refused_and_not_cached(provider: str) -> None:
    Provider.document = dict(Provider.document, issuer="https://evil.example")
    with pytest.raises(DiscoveryError, match=r"says its issuer is 'https://evil\.example'"):
        fetch_metadata(Settings(issuer=provider))
    with pytest.raises(DiscoveryError):
        fetch_metadata(Settings(issuer=provider))
    assert Provider.hits == 2


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
