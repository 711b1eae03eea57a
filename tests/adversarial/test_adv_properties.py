"""Property-based tests (hypothesis) of the redirect parser and the listener's connection handling.

Connections are handed to ``CallbackListener.serve_connection`` over a socket pair, so each
generated request is served exactly as a real one, without a network round trip. The
properties: any bytes are answered or dropped and never end the login; only the exact
state ends it, with exactly the code sent; whatever an error says, the page shows it as
text and the terminal gets it without control characters; and the parser agrees with
the standard library on every query it accepts.
"""

from __future__ import annotations

import socket
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode

import pytest
from adv_raw import Reply, parse_reply, read_all
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from exls_flows_pkce import pages
from exls_flows_pkce.listener import (
    MAX_FIELDS,
    RESPONSE_FIELDS,
    Callback,
    CallbackListener,
    parse_callback_query,
)

pytestmark = [
    pytest.mark.attack("property"),
    pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning"),
]

STATE = "the-state-of-this-login-0123456789abcdefghijkl"
ISSUER = "https://idp.adversarial.test"
EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REFUSED = {None, 400, 404, 405, 414, 431}
TEMPLATE_TAGS = {"html", "head", "meta", "title", "style", "body", "main", "h1", "p"}


@contextmanager
def listener() -> Iterator[CallbackListener]:
    server = CallbackListener(state=STATE, issuer=ISSUER, connection_timeout=1.0)
    try:
        yield server
    finally:
        server.close()


def serve(server: CallbackListener, data: bytes) -> Reply:
    """One connection carrying ``data``, served by the listener as it would a real one."""
    client, end = socket.socketpair()
    with client, end:
        client.sendall(data)
        client.shutdown(socket.SHUT_WR)
        server.serve_connection(end)
        end.close()
        return parse_reply(read_all(client, 2.0))


def callback(params: list[tuple[str, str]]) -> bytes:
    return f"GET /callback?{urlencode(params)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.paragraphs: list[str] = []
        self._in_p = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self._in_p = tag == "p"
        if self._in_p:
            self.paragraphs.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in_p = False

    def handle_data(self, data: str) -> None:
        if self._in_p:
            self.paragraphs[-1] += data


def visible_and_plain(text: str) -> bool:
    return not any(unicodedata.category(ch) in {"Cc", "Cf"} for ch in text)


others = st.lists(
    st.tuples(
        st.text(min_size=1, max_size=10).filter(lambda n: n not in RESPONSE_FIELDS),
        st.text(max_size=20),
    ),
    max_size=5,
)


@EXAMPLES
@given(st.binary(max_size=12000))
@example(b"GET /callback?state=" + STATE.encode() + b"&code=x HTTP/2.0\r\n\r\n")
@example(b"GET /callback?state=" + STATE.encode() + b"&state=x&code=x HTTP/1.1\r\n\r\n")
def test_any_bytes_are_refused_or_dropped_and_never_end_the_login(data: bytes) -> None:
    with listener() as server:
        reply = serve(server, data)
        assert reply.status in REFUSED
        assert server.wait(0) is None


@EXAMPLES
@given(st.text(max_size=60).filter(lambda s: s != STATE), st.text(min_size=1), others)
@example(STATE[:-1], "code", [])
@example(STATE + "\x00", "code", [])
@example(STATE.upper(), "code", [])
@example(" " + STATE, "code", [])
def test_only_the_exact_state_ends_the_login(
    state: str, code: str, extra: list[tuple[str, str]]
) -> None:
    with listener() as server:
        reply = serve(server, callback([("code", code), ("state", state), *extra]))
        assert reply.status == 400
        assert server.wait(0) is None


@EXAMPLES
@given(st.integers(min_value=0, max_value=len(STATE) - 1), st.characters(codec="utf-8"))
def test_a_state_one_character_off_is_refused(index: int, char: str) -> None:
    near = STATE[:index] + char + STATE[index + 1 :]
    with listener() as server:
        server.finish(pages.success())
        status = serve(server, callback([("code", "forged"), ("state", near)])).status
        if near == STATE:  # the character drawn was the one already there
            assert (status, server.wait(0)) == (200, Callback(code="forged"))
        else:
            assert (status, server.wait(0)) == (400, None)


@EXAMPLES
@given(st.text(min_size=1, max_size=200), others, st.booleans())
def test_the_exact_state_delivers_exactly_the_code_sent(
    code: str, extra: list[tuple[str, str]], with_iss: bool
) -> None:
    params = [("state", STATE), *extra, ("code", code)]
    if with_iss:
        params.append(("iss", ISSUER))
    with listener() as server:
        server.finish(pages.success())  # the exchange 'succeeded': answer at once
        reply = serve(server, callback(params))
        assert (reply.status, reply.body) == (200, pages.success())
        assert server.wait(0) == Callback(code=code)


@EXAMPLES
@given(st.text(min_size=1, max_size=80), st.text(max_size=300))
@example("<script>alert(1)</script>", "</p><img src=x onerror=alert(1)>")
@example("server_error", "\x1b[2J\x1b]0;owned\x07\u202e\u200bdrop table")
def test_an_error_is_text_on_the_page_and_plain_on_the_terminal(
    error: str, description: str
) -> None:
    with listener() as server:
        query = [("error", error), ("state", STATE)]
        if description:
            query.append(("error_description", description))
        reply = serve(server, callback(query))
        outcome = server.wait(0)
        assert outcome is not None and outcome.code is None and outcome.failure
        assert visible_and_plain(outcome.failure)
        assert reply.status == 200
        page = Tags()
        page.feed(reply.body)
        assert page.tags <= TEMPLATE_TAGS  # nothing the provider sent became markup
        assert page.paragraphs[0] == outcome.failure


@EXAMPLES
@given(st.text(max_size=300))
@example("code=a&code=b")
@example("state=%ff")
@example("&".join(["x=1"] * (MAX_FIELDS + 1)))
@example("code=%2B+%20&state=a+b")
def test_the_parser_agrees_with_the_standard_library(query: str) -> None:
    try:
        reference = parse_qs(
            query, keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS
        )
    except ValueError:
        reference = None
    try:
        parsed = parse_callback_query(query)
    except ValueError:
        assert reference is None or any(
            len(reference.get(name, [])) > 1 for name in RESPONSE_FIELDS
        )
        return
    assert reference is not None
    for name in RESPONSE_FIELDS:
        values = reference.get(name, [])
        assert len(values) <= 1
        assert getattr(parsed, name) == (values[0] if values and values[0] else None)
