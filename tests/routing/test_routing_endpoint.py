"""The routing endpoint, against a real HTTP server on 127.0.0.1: answers, failures, caching."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from exls_core.config import Settings
from exls_core.paths import user_dir
from exls_core.plugin import SSORoute
from exls_core.registry import Registry, new_plugin_manager
from exls_core.routing import Route, RouteLookupError, query_endpoint, resolve_route
from testkit.http_server import FakeServer, QuietHandler

ACME = {"name": "Acme Okta", "params": {"connection": "acme-okta"}}


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"
    hang: bool = False  # answer only when the server closes
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(body: object, status: int = 200) -> Reply:
    return Reply(status, json.dumps(body).encode())


class RoutesServer:
    """Answers GET /routes?domain=... from ``replies``; records every request's query."""

    def __init__(self) -> None:
        self.replies: dict[str, Reply] = {}
        self.requests: list[dict[str, list[str]]] = []
        routes = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                routes.requests.append(query)
                reply = routes.replies.get(query.get("domain", [""])[0], Reply(404, b""))
                if reply.hang:  # until the test ends (at most a minute): the client gives up
                    self.hang(60)
                self.reply(reply.status, reply.body, reply.content_type, reply.headers)

        self.httpd = FakeServer(Handler, name="routes")
        self.url = f"{self.httpd.base}/routes"


@pytest.fixture
def server() -> Iterator[RoutesServer]:
    routes = RoutesServer()
    with routes.httpd:
        yield routes


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def resolve(email: str, settings: Settings, clock: Clock | None = None) -> tuple[Route, list[str]]:
    warnings: list[str] = []
    registry = Registry(pm=new_plugin_manager(), flows={}, broken={}, warn=warnings.append)
    route = resolve_route(
        email,
        settings,
        registry,
        organization=None,
        warn=warnings.append,
        clock=clock or Clock(),
    )
    return route, warnings


def test_a_route_from_the_endpoint(server: RoutesServer) -> None:
    server.replies["acme.com"] = json_reply(ACME)
    route, warnings = resolve("alice@acme.com", Settings(sso_routes_url=server.url))
    assert route.params == {"connection": "acme-okta"}
    assert route.announcement == "Signing in with Acme Okta (acme.com)"
    assert route.source == f"the routing endpoint {server.url}"
    assert warnings == []


def test_only_the_domain_is_sent_and_the_urls_own_query_is_kept(server: RoutesServer) -> None:
    server.replies["acme.com"] = json_reply(ACME)
    resolve("alice@acme.com", Settings(sso_routes_url=server.url + "?tenant=eu"))
    assert server.requests == [{"tenant": ["eu"], "domain": ["acme.com"]}]


def test_the_endpoint_name_defaults_to_the_domain(server: RoutesServer) -> None:
    server.replies["acme.com"] = json_reply({"params": {"connection": "acme"}})
    route, _ = resolve("alice@acme.com", Settings(sso_routes_url=server.url))
    assert route.announcement == "Signing in with acme.com (acme.com)"


@pytest.mark.parametrize(
    "reply",
    [
        Reply(404, b"not here", "text/plain"),
        Reply(204, b""),
        json_reply({}),
        json_reply({"name": "Acme", "params": {}}),
    ],
    ids=["404", "204", "empty-object", "empty-params"],
)
def test_no_sso_answers_mean_the_default_page_without_warning(
    server: RoutesServer, reply: Reply
) -> None:
    server.replies["acme.com"] = reply
    route, warnings = resolve("alice@acme.com", Settings(sso_routes_url=server.url))
    assert route.params == {}
    assert route.announcement == "acme.com has no SSO configured: using the exalsius login page"
    assert warnings == []


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply(500, b"oops", "text/plain"), "answered HTTP 500"),
        (Reply(503, b"{}"), "answered HTTP 503"),
        (Reply(403, b"{}"), "answered HTTP 403"),
        (Reply(302, b"", headers={"Location": "https://evil.example/"}), "answered HTTP 302"),
        (Reply(200, b"<html>hello</html>", "text/html"), "did not answer with JSON"),
        (json_reply(["acme"]), "did not answer with a JSON object"),
        (json_reply({"name": 5, "params": {}}), "wrong shape"),
        (json_reply({"name": "Acme", "params": "connection=acme"}), "wrong shape"),
    ],
    ids=["500", "503", "403", "redirect", "html", "list", "bad-name", "bad-params"],
)
def test_failures_and_junk_warn_and_use_the_default_page(
    server: RoutesServer, reply: Reply, reason: str
) -> None:
    server.replies["acme.com"] = reply
    route, warnings = resolve("alice@acme.com", Settings(sso_routes_url=server.url))
    assert route.params == {}
    assert route.announcement == "Could not look up SSO for acme.com: using the exalsius login page"
    assert len(warnings) == 1
    assert warnings[0].startswith("cannot look up SSO for acme.com: ")
    assert reason in warnings[0]
    assert warnings[0].endswith("; using the exalsius login page")


def test_a_slow_endpoint_times_out(server: RoutesServer) -> None:
    # The endpoint holds its answer until the test ends: only the timeout can end the lookup
    # (and test_the_endpoint_timeout_is_at_most_five_seconds checks which timeout is used).
    server.replies["acme.com"] = Reply(200, json.dumps(ACME).encode(), hang=True)
    route, warnings = resolve(
        "alice@acme.com", Settings(sso_routes_url=server.url, http_timeout=0.2)
    )
    assert len(server.requests) == 1
    assert route.params == {}
    assert warnings == [
        f"cannot look up SSO for acme.com: {server.url} did not answer in time; "
        "using the exalsius login page"
    ]


def test_the_endpoint_timeout_is_at_most_five_seconds(
    server: RoutesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[float] = []

    def fake_fetch(url: str, domain: str, timeout: float) -> SSORoute | None:
        seen.append(timeout)
        return None

    monkeypatch.setattr("exls_core.routing.endpoint._fetch", fake_fetch)
    resolve("alice@acme.com", Settings(sso_routes_url=server.url, http_timeout=30))
    resolve("alice@other.com", Settings(sso_routes_url=server.url, http_timeout=2))
    assert seen == [5.0, 2.0]


def test_an_unreachable_endpoint_warns() -> None:
    route, warnings = resolve("alice@acme.com", Settings(sso_routes_url="http://127.0.0.1:9/r"))
    assert route.params == {}
    assert warnings == [
        "cannot look up SSO for acme.com: cannot connect to http://127.0.0.1:9/r; "
        "using the exalsius login page"
    ]


def test_a_key_in_the_url_query_stays_out_of_warnings(server: RoutesServer) -> None:
    server.replies["acme.com"] = Reply(500, b"")
    _, warnings = resolve("alice@acme.com", Settings(sso_routes_url=server.url + "?key=s3cret"))
    assert "s3cret" not in warnings[0]


def test_endpoint_parameters_are_vetted_like_any_route(server: RoutesServer) -> None:
    server.replies["acme.com"] = json_reply(
        {"name": "Acme", "params": {"connection": "acme", "redirect_uri": "https://evil.example"}}
    )
    route, warnings = resolve("alice@acme.com", Settings(sso_routes_url=server.url))
    assert route.params == {"connection": "acme"}
    assert warnings == [
        f"ignoring SSO parameter 'redirect_uri' from the routing endpoint {server.url}: "
        "it is reserved: a route can only add parameters such as connection"
    ]


def test_the_table_answers_before_the_endpoint(server: RoutesServer) -> None:
    server.replies["acme.com"] = json_reply({"name": "Other", "params": {"connection": "x"}})
    table = {"acme.com": SSORoute("Acme Okta", {"connection": "acme-okta"})}
    route, _ = resolve("alice@acme.com", Settings(sso_routes_url=server.url, sso_domains=table))
    assert route.params == {"connection": "acme-okta"}
    assert server.requests == []


# --- caching ----------------------------------------------------------------------------------


def test_a_route_is_cached_until_the_ttl_expires(server: RoutesServer) -> None:
    server.replies["acme.com"] = json_reply(ACME)
    settings = Settings(sso_routes_url=server.url, sso_routes_ttl=60)
    clock = Clock()
    assert resolve("alice@acme.com", settings, clock)[0].params == {"connection": "acme-okta"}
    server.replies["acme.com"] = json_reply({"name": "New", "params": {"connection": "new"}})
    clock.now += 59
    assert resolve("bob@acme.com", settings, clock)[0].params == {"connection": "acme-okta"}
    assert len(server.requests) == 1  # the cache answered
    clock.now += 1
    assert resolve("bob@acme.com", settings, clock)[0].params == {"connection": "new"}
    assert len(server.requests) == 2


def test_no_sso_answers_are_cached_too(server: RoutesServer) -> None:
    settings = Settings(sso_routes_url=server.url, sso_routes_ttl=60)
    clock = Clock()
    for _ in range(3):
        assert resolve("alice@acme.com", settings, clock)[0].params == {}
    assert len(server.requests) == 1


def test_failures_are_not_cached(server: RoutesServer) -> None:
    server.replies["acme.com"] = Reply(503, b"")
    settings = Settings(sso_routes_url=server.url)
    resolve("alice@acme.com", settings)
    server.replies["acme.com"] = json_reply(ACME)
    assert resolve("alice@acme.com", settings)[0].params == {"connection": "acme-okta"}
    assert len(server.requests) == 2


def test_the_cache_is_per_domain_and_per_endpoint(server: RoutesServer) -> None:
    server.replies["acme.com"] = json_reply(ACME)
    resolve("alice@acme.com", Settings(sso_routes_url=server.url))
    resolve("alice@other.com", Settings(sso_routes_url=server.url))
    resolve("alice@acme.com", Settings(sso_routes_url=server.url + "?v=2"))
    assert len(server.requests) == 3


def test_a_cache_entry_from_the_future_is_not_trusted(server: RoutesServer) -> None:
    server.replies["acme.com"] = json_reply(ACME)
    settings = Settings(sso_routes_url=server.url)
    clock = Clock()
    resolve("alice@acme.com", settings, clock)
    clock.now -= 3600  # the system clock was set back
    resolve("alice@acme.com", settings, clock)
    assert len(server.requests) == 2


def test_cached_entries_live_in_the_cache_directory_and_damage_is_ignored(
    server: RoutesServer,
) -> None:
    server.replies["acme.com"] = json_reply(ACME)
    settings = Settings(sso_routes_url=server.url)
    resolve("alice@acme.com", settings)
    (entry,) = Path(user_dir("cache")).glob("sso-route-*.json")
    assert json.loads(entry.read_text(encoding="utf-8"))["answer"] == ACME
    entry.write_text("{ damaged", encoding="utf-8")
    assert resolve("alice@acme.com", settings)[0].params == {"connection": "acme-okta"}
    assert len(server.requests) == 2


def test_cached_parameters_are_vetted_again(server: RoutesServer) -> None:
    # Someone edits the cache file: it still cannot smuggle in a reserved parameter.
    server.replies["acme.com"] = json_reply(ACME)
    settings = Settings(sso_routes_url=server.url)
    resolve("alice@acme.com", settings)
    (entry,) = Path(user_dir("cache")).glob("sso-route-*.json")
    data = json.loads(entry.read_text(encoding="utf-8"))
    data["answer"]["params"]["client_id"] = "other-app"
    entry.write_text(json.dumps(data), encoding="utf-8")
    route, warnings = resolve("alice@acme.com", settings)
    assert len(server.requests) == 1  # it came from the cache
    assert route.params == {"connection": "acme-okta"}
    assert len(warnings) == 1 and "'client_id'" in warnings[0]


def test_query_endpoint_raises_on_junk(server: RoutesServer, tmp_path: Path) -> None:
    server.replies["acme.com"] = Reply(200, b"junk", "text/plain")
    with pytest.raises(RouteLookupError, match="did not answer with JSON"):
        query_endpoint(server.url, "acme.com", timeout=1, ttl=60, cache=tmp_path)
    assert list(tmp_path.iterdir()) == []
