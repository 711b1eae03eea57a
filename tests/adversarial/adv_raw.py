"""Raw HTTP for hostile local callers: send any bytes to the loopback listener, read the reply.

Also the attack catalogue the listener tests run, in-process and through the real CLI.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode


@dataclass
class Reply:
    status: int | None  # None: closed without an answer (dropped)
    headers: dict[str, str]
    body: str


def parse_reply(raw: bytes) -> Reply:
    if not raw:
        return Reply(None, {}, "")
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    try:
        status = int(lines[0].split(" ")[1])
    except (IndexError, ValueError):
        status = -1  # an answer, but not HTTP
    return Reply(status, headers, body.decode("utf-8", "replace"))


def read_all(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, TimeoutError):
        pass
    return b"".join(chunks)


def send_raw(port: int, data: bytes, timeout: float = 5.0) -> Reply:
    """Send ``data``, say that is all (half-close), and read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # refused mid-send: read whatever answer there is
        return parse_reply(read_all(sock, timeout))


def get(
    port: int, target: str, headers: dict[str, str] | None = None, timeout: float = 5.0
) -> Reply:
    lines = [f"GET {target} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return send_raw(port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), timeout)


def request(target: str, *, method: str = "GET", headers: str = "") -> Callable[[int, str], bytes]:
    """An attack: a request line (the port and state fill {port} and {state}) and headers."""

    def build(port: int, state: str) -> bytes:
        line = f"{method} {target.format(port=port, state=state)} HTTP/1.1\r\n"
        return (line + f"Host: 127.0.0.1:{port}\r\n{headers}\r\n").encode("latin-1")

    return build


def raw(data: bytes) -> Callable[[int, str], bytes]:
    return lambda port, state: data


def query(**params: str) -> str:
    return "/callback?" + urlencode(params)


FORGED = "forged-state-0123456789abcdefghijklmnopqrstuv"
SCRIPT = "<script>alert(document.cookie)</script>"

# name -> (bytes to send, the statuses the listener may answer; None: dropped)
ATTACKS: dict[str, tuple[Callable[[int, str], bytes], set[int | None]]] = {
    # where it goes
    "path-root": (request("/"), {404}),
    "path-favicon": (request("/favicon.ico"), {404}),
    "path-trailing-slash": (request("/callback/?" + "code=c&state={state}"), {404}),
    "path-upper-case": (request("/CALLBACK?code=c&state={state}"), {404}),
    "path-percent-encoded": (request("/%63allback?code=c&state={state}"), {404}),
    "path-dot-segments": (request("/x/../callback?code=c&state={state}"), {404}),
    "path-double-slash": (request("//callback?code=c&state={state}"), {404}),
    "path-absolute-form": (request("http://127.0.0.1:{port}/callback?code=c&state={state}"), {404}),
    "path-semicolon": (request("/callback;jsessionid=1?code=c&state={state}"), {404}),
    "path-asterisk": (request("*"), {404}),
    # what it claims
    "state-missing": (request(query(code="forged")), {400}),
    "state-empty": (request(query(code="forged", state="")), {400}),
    "state-guessed": (request(query(code="forged", state=FORGED)), {400}),
    "state-prefix-of-real": (request("/callback?code=forged&state={state:.42}"), {400}),
    "state-real-plus-one": (request("/callback?code=forged&state={state}x"), {400}),
    "state-real-with-nul": (request("/callback?code=forged&state={state}%00"), {400}),
    "state-real-with-space": (request("/callback?code=forged&state=%20{state}"), {400}),
    "state-twice": (request("/callback?code=forged&state={state}&state={state}"), {400}),
    "state-forged-then-real": (request("/callback?code=forged&state=x&state={state}"), {400}),
    "code-twice": (request("/callback?code=a&code=b&state={state}"), {400}),
    "neither-code-nor-error": (request("/callback?state={state}"), {400}),
    "error-with-script-forged-state": (
        request(query(error=SCRIPT, error_description=SCRIPT, state=FORGED)),
        {400},
    ),
    "too-many-parameters": (request("/callback?" + "&".join(f"p{i}=1" for i in range(150))), {400}),
    # how it is said
    "method-post": (request("/callback?code=forged&state={state}", method="POST"), {405}),
    "method-head": (request("/callback?code=forged&state={state}", method="HEAD"), {405}),
    "method-lower-case": (request("/callback?code=forged&state={state}", method="get"), {405}),
    "http-0.9": (raw(b"GET /callback?code=forged\r\n\r\n"), {400}),
    "http-2-preface": (raw(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), {400}),
    "tls-client-hello": (
        raw(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) + b"\r\n\r\n"),
        {400, None},
    ),
    "crlf-injection": (request("/callback?code=x%0d%0aSet-Cookie:%20a=b&state=" + FORGED), {400}),
    "two-requests-in-one": (
        raw(b"GET /favicon.ico HTTP/1.1\r\n\r\nGET /callback?code=forged&state=x HTTP/1.1\r\n\r\n"),
        {404},
    ),
    "non-ascii-bytes": (raw(b"GET /callback?state=\xff\xfe HTTP/1.1\r\n\r\n"), {400}),
    "nul-bytes": (raw(b"\x00" * 200 + b"\r\n\r\n"), {400}),
    "bare-newlines": (raw(b"GET /callback?code=forged&state=x HTTP/1.1\n\n"), {400}),
    "empty-request": (raw(b"\r\n\r\n"), {400}),
    "closed-without-a-byte": (raw(b""), {None}),
    # how much of it
    "oversized-query": (request("/callback?code=" + "c" * 9000 + "&state={state}"), {414}),
    "oversized-header": (request("/callback", headers="Cookie: " + "x" * 9000 + "\r\n"), {431}),
    "many-headers": (
        request("/callback", headers="".join(f"X-H{i}: {'y' * 100}\r\n" for i in range(100))),
        {431},
    ),
    "endless-request-line": (raw(b"GET /" + b"a" * 20000), {414}),
}
