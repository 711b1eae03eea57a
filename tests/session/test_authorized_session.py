"""exls_core.authorized.AuthorizedSession against local HTTPS servers (unit tests: the token
source and the renewal are stand-ins; tests/e2e/test_e2e_python_api.py uses the real ones)."""

from __future__ import annotations

import io
import logging
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme

from exls_core.authorized import DEFAULT_TIMEOUT, AuthorizedSession
from testkit.http_server import FakeServer, QuietHandler

INVALID = 'Bearer realm="api", error="invalid_token", error_description="expired"'


class Api(QuietHandler):
    """/ok answers 200 to any token; /strict only to "Bearer good", else 401 invalid_token
    (401 with another error on /other-401); /away redirects to the ?to= URL."""

    def _handle(self) -> None:
        server: Any = self.server
        auth = self.headers.get("Authorization")
        body = self.form()
        server.seen.append((self.command, self.path, auth, body))
        if self.path.startswith("/away"):
            self.reply(302, headers={"Location": self.path.split("?to=", 1)[1]})
        elif self.path == "/strict" and auth != "Bearer good":
            self.reply(401, headers={"WWW-Authenticate": INVALID})
        elif self.path == "/other-401":
            self.reply(401, headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'})
        else:
            self.reply(200, b"{}")

    do_GET = do_POST = _handle


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    authority = trustme.CA()
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return authority, path


def _server(ca: tuple[trustme.CA, Path]) -> FakeServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca[0].issue_cert("127.0.0.1").configure_cert(context)
    server = FakeServer(Api, tls=context, name="api")
    server.seen = []  # type: ignore[attr-defined]
    return server.start()


@pytest.fixture
def api(ca: tuple[trustme.CA, Path]) -> Iterator[FakeServer]:
    server = _server(ca)
    yield server
    server.close()


@pytest.fixture
def elsewhere(ca: tuple[trustme.CA, Path]) -> Iterator[FakeServer]:
    server = _server(ca)  # another port: another origin
    yield server
    server.close()


class Tokens:
    """A stand-in for the exls session: counts fetches and renewals."""

    def __init__(self, token: str = "bad", renewed: str = "good", expires_in: float = 3600):  # noqa: S107
        self.token, self.renewed, self.expires_in = token, renewed, expires_in
        self.now = 1_000_000.0
        self.fetches = 0
        self.renewals: list[str] = []
        self.lock = threading.Lock()

    def fetch(self) -> tuple[str, float]:
        with self.lock:
            self.fetches += 1
            return self.token, self.now + self.expires_in

    def renew(self, refused: str) -> tuple[str, float]:
        with self.lock:
            self.renewals.append(refused)
            self.token = self.renewed
            return self.token, self.now + self.expires_in


def session_for(tokens: Tokens, ca: tuple[trustme.CA, Path], **kwargs: Any) -> AuthorizedSession:
    http = AuthorizedSession(
        tokens=tokens.fetch, renew=tokens.renew, clock=lambda: tokens.now, **kwargs
    )
    http.verify = str(ca[1])
    http.trust_env = False
    return http


def seen(server: FakeServer) -> list[tuple[str, str, str | None, bytes]]:
    return server.seen  # type: ignore[attr-defined,no-any-return]


def test_sends_the_bearer_token_and_leaves_the_callers_headers_alone(
    api: FakeServer, ca: tuple[trustme.CA, Path]
) -> None:
    tokens = Tokens(token="good")
    headers = {"X-Trace": "1"}
    with session_for(tokens, ca) as http:
        assert http.get(api.base + "/ok", headers=headers).status_code == 200
        assert http.get(api.base + "/ok").status_code == 200
    assert [auth for _, _, auth, _ in seen(api)] == ["Bearer good", "Bearer good"]
    assert headers == {"X-Trace": "1"}  # oauthlib writes into the dict it is given
    assert tokens.fetches == 1  # the held token serves until a minute before its expiry


def test_the_token_is_fetched_again_a_minute_before_it_expires(
    api: FakeServer, ca: tuple[trustme.CA, Path]
) -> None:
    tokens = Tokens(token="good")
    with session_for(tokens, ca) as http:
        http.get(api.base + "/ok")
        tokens.now += 3600 - 61
        http.get(api.base + "/ok")
        assert tokens.fetches == 1
        tokens.now += 2
        http.get(api.base + "/ok")
        assert tokens.fetches == 2


def test_a_short_lived_token_is_fetched_again_at_half_its_life(
    api: FakeServer, ca: tuple[trustme.CA, Path]
) -> None:
    tokens = Tokens(token="good", expires_in=30)
    with session_for(tokens, ca) as http:
        http.get(api.base + "/ok")
        tokens.now += 14
        http.get(api.base + "/ok")
        assert tokens.fetches == 1
        tokens.now += 2
        http.get(api.base + "/ok")
        assert tokens.fetches == 2


def test_401_invalid_token_renews_once_and_replays_the_request(
    api: FakeServer, ca: tuple[trustme.CA, Path]
) -> None:
    tokens = Tokens()
    with session_for(tokens, ca) as http:
        response = http.post(api.base + "/strict", data=b"payload")
        assert response.status_code == 200
        assert http.post(api.base + "/strict", json={"a": 1}).status_code == 200
    assert tokens.renewals == ["bad"]
    assert [(path, auth, body) for _, path, auth, body in seen(api)] == [
        ("/strict", "Bearer bad", b"payload"),
        ("/strict", "Bearer good", b"payload"),
        ("/strict", "Bearer good", b'{"a": 1}'),
    ]


def test_a_second_401_after_the_renewal_is_returned(
    api: FakeServer, ca: tuple[trustme.CA, Path]
) -> None:
    tokens = Tokens(renewed="still-bad")
    with session_for(tokens, ca) as http:
        assert http.get(api.base + "/strict").status_code == 401
    assert tokens.renewals == ["bad"]  # once, not in a loop
    assert len(seen(api)) == 2


def test_a_file_body_is_not_replayed_but_the_token_is_renewed(
    api: FakeServer, ca: tuple[trustme.CA, Path]
) -> None:
    tokens = Tokens()
    with session_for(tokens, ca) as http:
        response = http.post(api.base + "/strict", data=io.BytesIO(b"read once"))
        assert response.status_code == 401
        assert tokens.renewals == ["bad"]
        assert http.get(api.base + "/strict").status_code == 200
    assert len(seen(api)) == 2


def test_other_401s_renew_nothing(api: FakeServer, ca: tuple[trustme.CA, Path]) -> None:
    tokens = Tokens()
    with session_for(tokens, ca) as http:
        assert http.get(api.base + "/other-401").status_code == 401
        assert http.get(api.base + "/strict", withhold_token=True).status_code == 401
    assert tokens.renewals == []
    assert seen(api)[1][2] is None  # withheld


def test_a_redirect_to_another_origin_does_not_carry_the_token(
    api: FakeServer, elsewhere: FakeServer, ca: tuple[trustme.CA, Path]
) -> None:
    tokens = Tokens(token="good")
    with session_for(tokens, ca) as http:
        assert http.get(f"{api.base}/away?to={elsewhere.base}/ok").status_code == 200
        assert http.get(f"{api.base}/away?to={api.base}/ok").status_code == 200
        # The other origin's 401 is not about our token: nothing is renewed.
        assert http.get(f"{api.base}/away?to={elsewhere.base}/strict").status_code == 401
    assert [(path, auth) for _, path, auth, _ in seen(elsewhere)] == [
        ("/ok", None),
        ("/strict", None),
    ]
    assert seen(api)[2][1:3] == ("/ok", "Bearer good")  # same origin: kept
    assert tokens.renewals == []


def test_every_request_has_a_timeout(
    api: FakeServer, ca: tuple[trustme.CA, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    timeouts: list[object] = []
    send = requests.adapters.HTTPAdapter.send

    def spy(self: requests.adapters.HTTPAdapter, request: Any, **kwargs: Any) -> Any:
        timeouts.append(kwargs.get("timeout"))
        return send(self, request, **kwargs)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", spy)
    tokens = Tokens(token="good")
    with session_for(tokens, ca) as http:
        http.get(api.base + "/ok")
        http.get(api.base + "/ok", timeout=None)
        http.get(api.base + "/ok", timeout=3)
    with session_for(tokens, ca, timeout=7) as http:
        http.get(f"{api.base}/away?to={api.base}/ok")
    assert timeouts == [DEFAULT_TIMEOUT, DEFAULT_TIMEOUT, 3, 7, 7]


def test_plain_http_is_refused(ca: tuple[trustme.CA, Path]) -> None:
    from oauthlib.oauth2 import InsecureTransportError

    with session_for(Tokens(), ca) as http, pytest.raises(InsecureTransportError):
        http.get("http://127.0.0.1:9/")


def test_the_debug_log_shows_no_token(
    api: FakeServer, ca: tuple[trustme.CA, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with session_for(Tokens(), ca) as http:
        http.get(api.base + "/strict")
    assert "Adding token" in caplog.text  # requests-oauthlib did log the token dict
    assert "Authorization" in caplog.text  # and the headers
    assert "bad" not in caplog.text and "good" not in caplog.text


def test_eight_threads_renew_once(api: FakeServer, ca: tuple[trustme.CA, Path]) -> None:
    tokens = Tokens()
    start = threading.Barrier(8)
    codes: list[int] = []

    def call(http: AuthorizedSession) -> None:
        start.wait(timeout=60)
        codes.append(http.get(api.base + "/strict").status_code)

    with session_for(tokens, ca) as http:
        threads = [threading.Thread(target=call, args=(http,)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert codes == [200] * 8
    assert tokens.fetches == 1
    assert tokens.renewals == ["bad"]
