"""The browser somewhere else: the link is printed, and a pasted address (through a real pipe
on stdin) or the loopback redirect finishes the login; forged, stale and foreign pastes are
refused in one line while the prompt stays."""

from __future__ import annotations

import os
import pty
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from pkce_fakes import ISSUER, FakeUI, TokenEndpoint, get, make_request, serve_token_endpoint

from exls_core.plugin import FlowFailed, FlowFallback, TokenResponse
from exls_flows_pkce import flow
from exls_flows_pkce.listener import CallbackListener
from exls_flows_pkce.paste import PROMPT, Lines, link, typed_input

CODE = "the-authorization-code"


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    with serve_token_endpoint(TokenEndpoint()) as served:
        yield served


@pytest.fixture(params=["pipe", "terminal"])
def pipe(request: pytest.FixtureRequest) -> Iterator[tuple[IO[str], IO[str]]]:
    """(exls's stdin, the end someone writes to): a real pipe, or a pseudo-terminal whose
    master side plays the user typing (canonical mode: a line arrives on Enter)."""
    if request.param == "terminal":
        master, slave = pty.openpty()
        reader, writer = os.fdopen(slave, "r"), os.fdopen(master, "w")
    else:
        read_fd, write_fd = os.pipe()
        reader, writer = os.fdopen(read_fd, "r"), os.fdopen(write_fd, "w")
    yield reader, writer
    for end in (writer, reader):
        if not end.closed:
            end.close()


class WatchedUI(FakeUI):
    """A FakeUI whose lines a helper thread can wait for."""

    is_terminal = False

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()
        self.on_message: list[Callable[[str], None]] = []  # run in the flow's thread

    def message(self, text: str) -> None:
        for react in self.on_message:
            react(text)
        with self.changed:
            super().message(text)
            self.changed.notify_all()

    def wait_for(self, test: Callable[[str], bool], count: int = 1, timeout: float = 10) -> str:
        with self.changed:
            assert self.changed.wait_for(
                lambda: len([m for m in self.messages if test(m)]) >= count, timeout
            ), self.messages
            return [m for m in self.messages if test(m)][count - 1]


def authorization(ui: WatchedUI) -> tuple[str, dict[str, str]]:
    """The printed link and its query (state, redirect_uri, code_challenge...)."""
    url = ui.wait_for(lambda m: m.startswith(ISSUER))
    return url, {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def callback_address(params: dict[str, str], **query: str) -> str:
    return f"{params['redirect_uri']}?{urlencode(query)}"


@contextmanager
def running(target: Callable[[], None]) -> Iterator[None]:
    """A helper thread playing the user; joined before the test ends, its failure re-raised."""
    failures: list[BaseException] = []

    def play() -> None:
        try:
            target()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join(15)
        assert not thread.is_alive()
    if failures:
        raise failures[0]


def run_remote(
    endpoint: TokenEndpoint | None,
    stdin: IO[str] | None,
    ui: WatchedUI,
    *,
    launch_browser: bool = False,
    opener: Callable[[str], bool] = lambda url: False,
    **kwargs: Any,
) -> TokenResponse:
    def learn_challenge(text: str) -> None:
        # The provider learns the challenge from the printed link before the flow goes on
        # (in the flow's own thread: a paste can never reach the token endpoint first).
        if endpoint is not None and text.startswith(ISSUER):
            endpoint.challenge = parse_qs(urlsplit(text).query)["code_challenge"][0]

    ui.on_message.append(learn_challenge)
    request = make_request(endpoint, ui=ui, launch_browser=launch_browser, **kwargs)
    return flow.run(request, opener=opener, browser_grace=0.2, stdin=stdin)


def test_no_browser_prints_the_link_and_a_pasted_address_signs_in(
    endpoint: TokenEndpoint, pipe: tuple[IO[str], IO[str]]
) -> None:
    stdin, user = pipe
    ui = WatchedUI()
    opened: list[str] = []

    def paste() -> None:
        _, params = authorization(ui)
        ui.wait_for(lambda m: m.startswith(PROMPT))
        user.write(callback_address(params, code=CODE, state=params["state"]) + "\n")
        user.flush()

    with running(paste):
        response = run_remote(endpoint, stdin, ui, opener=opened.append)  # type: ignore[arg-type]
    assert response.access_token == "AT-secret-123"
    assert opened == []  # --no-browser: nothing was launched here
    port = urlsplit(endpoint.requests[0]["redirect_uri"]).port
    assert ui.messages[0] == (
        "Not opening a browser here (--no-browser). "
        "Open this link in a browser, on this machine or any other:"
    )
    assert ui.messages[1].startswith(f"{ISSUER}/authorize?")
    assert ui.messages[2] == (
        f"After you sign in, the browser goes to http://127.0.0.1:{port}/callback, which "
        f"reaches exls only from this machine. On another machine, forward port {port} first "
        f"(ssh -L {port}:127.0.0.1:{port} <this machine>), or copy the address of the page "
        "that fails to load."
    )
    assert ui.messages[3] == f"{PROMPT} (exls waits 0:10; Ctrl+C cancels)"
    assert len(ui.messages) == 4 and ui.statuses == []  # no live line under the prompt
    assert CODE not in ui.everything


def test_forged_stale_and_foreign_pastes_are_refused_and_the_prompt_stays(
    endpoint: TokenEndpoint, pipe: tuple[IO[str], IO[str]]
) -> None:
    stdin, user = pipe
    ui = WatchedUI()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        other_port = probe.getsockname()[1]

    def refused(count: int) -> str:
        return ui.wait_for(lambda m: m.startswith("Refused:"), count)

    def paste() -> None:
        _, params = authorization(ui)
        ui.wait_for(lambda m: m.startswith(PROMPT))
        own = urlsplit(params["redirect_uri"])
        attempts = [
            callback_address(params, code="forged", state="forged-state"),  # forged
            callback_address(params, code="old", state="a-state-of-an-earlier-login"),  # stale
            f"http://127.0.0.1:{other_port}/callback?"
            + urlencode({"code": CODE, "state": params["state"]}),  # another login's port
            f"http://evil.example{own.path}?" + urlencode({"code": CODE, "state": params["state"]}),
            f"http://127.0.0.1:{own.port}/other?state={params['state']}&code={CODE}",
            callback_address(params, state=params["state"]),  # neither code nor error
            "just some text",
        ]
        for number, attempt in enumerate(attempts, 1):
            user.write(f"  {attempt}  \n")
            user.flush()
            refused(number)
        user.write("\n")  # an empty line is ignored
        user.write(callback_address(params, code=CODE, state=params["state"]) + "\n")
        user.flush()

    with running(paste):
        response = run_remote(endpoint, stdin, ui)
    assert response.access_token == "AT-secret-123"
    refusals = [m for m in ui.messages if m.startswith("Refused:")]
    foreign = "Refused: That is not this login's address; it starts with http://127.0.0.1:"
    assert [r.split(" ", 3)[:3] for r in refusals[:2]] == [["Refused:", "It", "does"]] * 2
    assert all("(state mismatch)" in r for r in refusals[:2])
    assert all(r.startswith(foreign) for r in refusals[2:5] + refusals[6:])
    assert "neither an authorization code nor an error" in refusals[5]
    assert all(r.endswith(PROMPT) and "\n" not in r for r in refusals)
    assert len(refusals) == 7
    assert len(endpoint.requests) == 1  # only the real code was exchanged
    assert "forged" not in ui.everything and CODE not in ui.everything


def test_a_pasted_error_or_foreign_issuer_ends_the_login_like_a_redirect(
    pipe: tuple[IO[str], IO[str]],
) -> None:
    stdin, user = pipe
    ui = WatchedUI()

    def paste() -> None:
        _, params = authorization(ui)
        user.write(
            callback_address(params, code=CODE, state=params["state"], iss="https://evil.test")
            + "\n"
        )
        user.flush()

    with running(paste), pytest.raises(FlowFailed, match="mix-up defence"):
        run_remote(None, stdin, ui)

    ui = WatchedUI()

    def deny() -> None:
        _, params = authorization(ui)
        user.write(callback_address(params, error="access_denied", state=params["state"]) + "\n")
        user.flush()

    with running(deny), pytest.raises(FlowFailed, match=r"^Login was denied in the browser\.$"):
        run_remote(None, stdin, ui)


def test_the_redirect_still_works_while_the_prompt_waits(
    endpoint: TokenEndpoint, pipe: tuple[IO[str], IO[str]]
) -> None:
    stdin, _user = pipe  # someone could write, but the browser reaches exls (ssh -L)
    ui = WatchedUI()
    replies = []

    def browser() -> None:
        _, params = authorization(ui)
        port = urlsplit(params["redirect_uri"]).port or 0
        replies.append(
            get(port, "/callback?" + urlencode({"code": CODE, "state": params["state"]}))
        )

    with running(browser):
        assert run_remote(endpoint, stdin, ui).access_token == "AT-secret-123"
    assert replies[0].status == 200 and "You are signed in" in replies[0].body


def closed_pipe() -> IO[str]:
    read_fd, write_fd = os.pipe()
    os.close(write_fd)
    return os.fdopen(read_fd)


def closed_stream() -> IO[str]:
    stream = open(os.devnull)  # noqa: SIM115
    stream.close()
    return stream


def a_file(tmp_path: Path) -> IO[str]:
    (tmp_path / "input").write_text("http://127.0.0.1:1/callback?code=x&state=y\n")
    return open(tmp_path / "input")


STDINS: dict[str, Callable[[Path], IO[str]]] = {
    "devnull": lambda tmp_path: open(os.devnull),  # noqa: SIM115
    "closed-pipe": lambda tmp_path: closed_pipe(),
    "file": a_file,
    "closed": lambda tmp_path: closed_stream(),
}


@pytest.mark.parametrize("kind", list(STDINS))
def test_without_anyone_to_type_there_is_no_prompt_and_the_redirect_alone_counts(
    endpoint: TokenEndpoint, tmp_path: Path, kind: str
) -> None:
    ui = WatchedUI()

    def browser() -> None:
        _, params = authorization(ui)
        port = urlsplit(params["redirect_uri"]).port or 0
        get(port, "/callback?" + urlencode({"code": CODE, "state": params["state"]}))

    with closing(STDINS[kind](tmp_path)) as stdin, running(browser):
        assert run_remote(endpoint, stdin, ui).access_token == "AT-secret-123"
    assert not any(PROMPT in m for m in ui.messages)
    assert ui.messages[2].endswith("<this machine>).")  # no word about pasting
    assert ui.statuses[0].startswith("Waiting for the browser's redirect... 0:10 left")


def test_end_of_input_stops_the_prompt_but_not_the_wait(
    endpoint: TokenEndpoint, pipe: tuple[IO[str], IO[str]]
) -> None:
    stdin, user = pipe
    ui = WatchedUI()

    def close_then_redirect() -> None:
        _, params = authorization(ui)
        ui.wait_for(lambda m: m.startswith(PROMPT))
        user.close()  # Ctrl+D, or the writing program went away
        ui.wait_for(lambda m: m.startswith("Nothing more can be pasted"))
        port = urlsplit(params["redirect_uri"]).port or 0
        get(port, "/callback?" + urlencode({"code": CODE, "state": params["state"]}))

    with running(close_then_redirect):
        assert run_remote(endpoint, stdin, ui).access_token == "AT-secret-123"


@pytest.mark.parametrize("device_installed", [True, False])
def test_the_timeout_still_applies_and_says_what_to_try(
    pipe: tuple[IO[str], IO[str]], device_installed: bool
) -> None:
    stdin, _user = pipe
    ui = WatchedUI()
    others = ("device_code",) if device_installed else ()
    with pytest.raises(FlowFallback) as info:
        run_remote(None, stdin, ui, flow_timeout=0.5, other_flows=others)
    assert info.value.message == "Browser authentication timed out."
    hint = info.value.hint or ""
    assert "and no address was pasted in time. Try again (EXLS_AUTH_PKCE_TIMEOUT" in hint
    # only a flow that is installed, and that the provider has, is suggested
    assert hint.endswith(", or use --auth-flow device_code." if device_installed else "time).")


def test_explicit_pkce_whose_browser_cannot_open_prints_the_link(
    endpoint: TokenEndpoint, pipe: tuple[IO[str], IO[str]]
) -> None:
    stdin, user = pipe
    ui = WatchedUI()

    def paste() -> None:
        _, params = authorization(ui)
        user.write(callback_address(params, code=CODE, state=params["state"]) + "\n")
        user.flush()

    with running(paste):
        response = run_remote(endpoint, stdin, ui, launch_browser=True, can_fall_back=False)
    assert response.access_token == "AT-secret-123"
    assert ui.messages[0] == "Opening your browser..."
    assert ui.messages[1].startswith("Could not open a browser here. Open this link")


def test_ctrl_c_at_the_prompt_propagates_and_closes_the_listener(
    pipe: tuple[IO[str], IO[str]],
) -> None:
    stdin, _user = pipe
    ui = WatchedUI()
    ports: list[int] = []

    def interrupt() -> None:
        _, params = authorization(ui)
        ports.append(urlsplit(params["redirect_uri"]).port or 0)
        ui.wait_for(lambda m: m.startswith(PROMPT))
        time.sleep(0.2)  # let the flow sit in select()
        os.kill(os.getpid(), signal.SIGINT)  # what Ctrl+C sends; Python raises it in main

    with running(interrupt), pytest.raises(KeyboardInterrupt):
        run_remote(None, stdin, ui, flow_timeout=30)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", ports[0]), timeout=1).close()


# -- the pieces -------------------------------------------------------------------------------


def test_lines_come_whole_and_an_endless_line_is_cut() -> None:
    read_fd, write_fd = os.pipe()
    lines = Lines(read_fd)
    try:
        assert lines.poll(0) == []
        os.write(write_fd, b"first\nsec")
        assert lines.poll(1) == ["first"]
        os.write(write_fd, b"ond \r\n")
        assert lines.poll(1) == ["second"]
        os.write(write_fd, b"x" * 20000)
        assert [len(line) for line in lines.poll(1)] == [20000]
        os.write(write_fd, b"last words")
        os.close(write_fd)
        write_fd = -1
        assert lines.poll(1) + lines.poll(1) == ["last words"]  # at the end, a line unfinished
        assert lines.closed and lines.poll(1) == []
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)


def test_typed_input_is_a_terminal_or_a_pipe(tmp_path: Path) -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd) as reader, os.fdopen(write_fd, "w"):
        assert isinstance(typed_input(reader), Lines)
    with open(os.devnull) as devnull:
        assert typed_input(devnull) is None
    (tmp_path / "f").write_text("x")
    with open(tmp_path / "f") as file:
        assert typed_input(file) is None
    assert typed_input(None) is None
    assert typed_input(closed_stream()) is None


def test_a_link_a_terminal_can_open() -> None:
    url = "https://idp.test/authorize?a=1"
    assert link(url, False) == url
    assert link(url, True) == f"\x1b]8;;{url}\x1b\\{url}\x1b]8;;\x1b\\"


def test_deliver_applies_the_redirect_checks() -> None:
    with CallbackListener(state="s" * 43, issuer=ISSUER, ports=(0,)) as listener:
        port = listener.port
        assert listener.deliver("x" * 9000) == "That address is far too long to be this login's."
        assert listener.deliver(f"https://127.0.0.1:{port}/callback?code=c&state={'s' * 43}")
        assert listener.deliver(f"http://127.0.0.1:{port}/callback?code=c&code=d&state=x") == (
            "The response is malformed."
        )
        assert listener.wait(0) is None
        # No scheme, as some browsers show the address: accepted all the same.
        assert listener.deliver(f"127.0.0.1:{port}/callback?code=c&state={'s' * 43}") is None
        callback = listener.wait(0)
        assert callback is not None and callback.code == "c"
        again = listener.deliver(f"http://127.0.0.1:{port}/callback?code=c&state={'s' * 43}")
        assert again == "This login has already received its response."
        listener.finish("page", wait=5)  # no browser request to answer: returns at once


def test_a_link_carries_no_escape_sequence_of_the_providers() -> None:
    # Discovery refuses such an endpoint; the link is made safe all the same (issue 23).
    url = "https://idp.example/authorize\x1b]8;;https://evil.example/\x1b\\?state=s"
    assert "\x1b" not in link(url, False)
    wrapped = link(url, True)
    assert wrapped.count("\x1b") == 4  # the hyperlink's own two sequences, nothing else
    assert wrapped.startswith("\x1b]8;;https://idp.example/authorize ]8;;https://evil.example/")
