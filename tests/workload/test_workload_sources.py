"""Token sources of the workload flow: GitHub Actions, a named variable, a file.

GitHub's request URL is answered by a local fake (testkit's quiet server); nothing else is mocked.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from exls_core.plugin import FlowEnvironment, FlowFailed, FlowSettings, FlowUnavailable
from exls_flows_workload import plugin
from exls_flows_workload.sources import (
    NoSource,
    Source,
    claims,
    fetch_token,
    find_source,
    github_request_url,
)
from testkit.http_server import FakeServer, QuietHandler

REQUEST_TOKEN = "request-token-0123456789"


def jwt_like(**payload: object) -> str:
    def part(data: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = {"iss": "https://ci.example", "sub": "repo:acme/train:ref:refs/heads/main"}
    return f"{part({'alg': 'RS256'})}.{part({**claims, **payload})}.c2ln"


CI_TOKEN = jwt_like()


class GitHub(QuietHandler):
    """Answers like ACTIONS_ID_TOKEN_REQUEST_URL; records what it was asked."""

    seen: list[tuple[str, str]] = []
    status = 200
    lock = threading.Lock()

    def do_GET(self) -> None:
        with self.lock:
            self.seen.append((self.path, self.headers.get("Authorization", "")))
        if self.status != 200:
            self.reply(self.status, b'{"message":"no"}')
        elif self.headers.get("Authorization") != f"bearer {REQUEST_TOKEN}":
            self.reply(401, b"{}")
        else:
            self.reply(200, json.dumps({"count": 1, "value": CI_TOKEN}).encode())


@pytest.fixture
def github() -> Iterator[FakeServer]:
    GitHub.seen, GitHub.status = [], 200
    with FakeServer(GitHub) as server:
        yield server


def github_env(server: FakeServer) -> dict[str, str]:
    return {
        "GITHUB_ACTIONS": "true",
        "ACTIONS_ID_TOKEN_REQUEST_URL": f"{server.base}/_apis/token?api-version=2.0",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN,
    }


# -- the request URL ---------------------------------------------------------------------------


def test_the_audience_is_appended_to_the_query_github_already_has() -> None:
    url = github_request_url("https://gh.example/_apis/token?api-version=2.0", "https://idp/a b")
    assert url == "https://gh.example/_apis/token?api-version=2.0&audience=https%3A%2F%2Fidp%2Fa+b"
    parsed = parse_qs(urlsplit(url).query)
    assert parsed == {"api-version": ["2.0"], "audience": ["https://idp/a b"]}


def test_a_url_without_a_query_gets_one() -> None:
    assert github_request_url("https://gh.example/t", "x") == "https://gh.example/t?audience=x"


def test_a_plain_http_request_url_elsewhere_than_loopback_is_refused() -> None:
    with pytest.raises(FlowFailed, match="not an https URL"):
        github_request_url("http://gh.example/t?a=1", "x")


# -- choosing a source -------------------------------------------------------------------------


def test_github_actions_with_the_permission_is_a_source() -> None:
    env = {"ACTIONS_ID_TOKEN_REQUEST_URL": "https://x/?a=1", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t"}
    assert find_source(env, token_env=None, token_file=None) == Source(
        "github", "ACTIONS_ID_TOKEN_REQUEST_URL"
    )


def test_github_actions_without_the_permission_names_the_fix() -> None:
    with pytest.raises(NoSource) as caught:
        find_source({"GITHUB_ACTIONS": "true"}, token_env=None, token_file=None)
    assert "permissions: id-token: write" in str(caught.value) and caught.value.ci


def test_outside_ci_there_is_no_source_and_nothing_to_say_at_login() -> None:
    with pytest.raises(NoSource) as caught:
        find_source({}, token_env=None, token_file=None)
    assert not caught.value.ci


def test_a_named_variable_or_file_wins_over_github() -> None:
    env = {"GITHUB_ACTIONS": "true", "CI_JOB_JWT": CI_TOKEN}
    assert find_source(env, token_env="CI_JOB_JWT", token_file=None).kind == "env"
    assert find_source(env, token_env=None, token_file="/var/run/t").kind == "file"
    with pytest.raises(NoSource, match="CI_JOB_JWT"):
        find_source({}, token_env="CI_JOB_JWT", token_file=None)


def availability(environ: dict[str, str]) -> FlowEnvironment:
    return FlowEnvironment(
        environ=environ,
        platform="linux",
        stdin_is_terminal=False,
        stderr_is_terminal=False,
        settings=FlowSettings("workload", environ=environ),
    )


def test_the_flow_outranks_interactive_ones_when_a_source_is_present() -> None:
    env = {"ACTIONS_ID_TOKEN_REQUEST_URL": "https://x/?a=1", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t"}
    available = plugin.exls_flow_priority(availability(env))
    assert available.priority > 100 and available.reason == "a GitHub Actions ID token"
    by_setting = availability({"EXLS_AUTH_WORKLOAD_TOKEN_FILE": "/var/run/secrets/token"})
    assert plugin.exls_flow_priority(by_setting).reason == "a token file (/var/run/secrets/token)"
    with pytest.raises(FlowUnavailable) as missing:
        plugin.exls_flow_priority(availability({"GITHUB_ACTIONS": "true"}))
    assert missing.value.mention and "id-token: write" in str(missing.value)
    with pytest.raises(FlowUnavailable) as elsewhere:
        plugin.exls_flow_priority(availability({}))
    assert not elsewhere.value.mention
    assert plugin.exls_flow_needs_person() is False


# -- fetching the token ------------------------------------------------------------------------


def test_github_is_asked_with_the_request_token_for_the_audience(github: FakeServer) -> None:
    with requests.Session() as http:
        token = fetch_token(
            Source("github", "x"),
            audience="https://idp.example",
            http=http,
            environ=github_env(github),
        )
    assert token == CI_TOKEN
    [(path, auth)] = GitHub.seen
    assert parse_qs(urlsplit(path).query) == {
        "api-version": ["2.0"],
        "audience": ["https://idp.example"],
    }
    assert auth == f"bearer {REQUEST_TOKEN}"


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_github_request_says_what_to_check(github: FakeServer, status: int) -> None:
    GitHub.status = status
    with requests.Session() as http, pytest.raises(FlowFailed) as caught:
        fetch_token(Source("github", "x"), audience="a", http=http, environ=github_env(github))
    assert "id-token: write" in caught.value.message and REQUEST_TOKEN not in caught.value.message


def test_an_unreachable_github_is_one_line_without_the_request_token() -> None:
    server = FakeServer(GitHub)
    env = {**github_env(server), "ACTIONS_ID_TOKEN_REQUEST_URL": f"{server.base}/t?api-version=2.0"}
    server.server_close()  # nothing listens there now
    with requests.Session() as http, pytest.raises(FlowFailed) as caught:
        fetch_token(Source("github", "x"), audience="a", http=http, environ=env)
    assert caught.value.message.startswith("The GitHub ID token request failed:")
    assert "\n" not in caught.value.message and REQUEST_TOKEN not in caught.value.message


def test_a_variable_and_a_file_are_read_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(CI_TOKEN + "\n")
    with requests.Session() as http:
        assert (
            fetch_token(Source("file", str(path)), audience="a", http=http, environ={}) == CI_TOKEN
        )
        env = {"CI_JOB_JWT": f" {CI_TOKEN} "}
        assert (
            fetch_token(Source("env", "CI_JOB_JWT"), audience="a", http=http, environ=env)
            == CI_TOKEN
        )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "is empty"),
        ("not-a-jwt", "does not hold a JWT"),
        ("a.b.c", "does not hold a JWT"),
        (jwt_like(sub=""), "has no sub claim"),
    ],
)
def test_a_bad_token_is_named_by_where_it_came_from_never_shown(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "token"
    path.write_text(content)
    with requests.Session() as http, pytest.raises(FlowFailed) as caught:
        fetch_token(Source("file", str(path)), audience="a", http=http, environ={})
    assert expected in caught.value.message and str(path) in caught.value.message
    assert not content or content not in caught.value.message


def test_a_missing_file_says_what_to_mount(tmp_path: Path) -> None:
    with requests.Session() as http, pytest.raises(FlowFailed, match="does not exist; mount"):
        fetch_token(Source("file", str(tmp_path / "nope")), audience="a", http=http, environ={})


def test_claims_reads_subject_and_issuer() -> None:
    assert claims(CI_TOKEN)["sub"] == "repo:acme/train:ref:refs/heads/main"
