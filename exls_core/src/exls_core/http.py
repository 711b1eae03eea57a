"""HTTP for exls: every request has a timeout, a User-Agent, and a bounded response size.

Custom CAs and proxies work through requests' standard variables (REQUESTS_CA_BUNDLE,
SSL_CERT_FILE via CURL_CA_BUNDLE, HTTPS_PROXY, NO_PROXY).
"""

from __future__ import annotations

from typing import Any

import requests

from exls_core import __version__
from exls_core.errors import ExlsError

DEFAULT_TIMEOUT = 10.0
MAX_BODY = 1024 * 1024  # identity provider answers are small; refuse to buffer a flood


class TimeoutSession(requests.Session):
    """A requests session that never waits forever (a default timeout on every call) and
    follows no redirect unless a call asks with ``allow_redirects=True``: a 307 would re-post
    refresh tokens or codes to another host. (requests' own ``get`` would follow them.)"""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        self.default_timeout = timeout
        self.headers["User-Agent"] = f"exls/{__version__}"

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.default_timeout)
        kwargs.setdefault("allow_redirects", False)
        return super().request(method, url, *args, **kwargs)

    def get(self, url: str | bytes, **kwargs: Any) -> Any:
        kwargs.setdefault("allow_redirects", False)
        return self.request("GET", url, **kwargs)


def new_session(timeout: float = DEFAULT_TIMEOUT) -> TimeoutSession:
    return TimeoutSession(timeout)


def read_body(response: requests.Response, what: str) -> bytes:
    """The body, at most MAX_BODY bytes, or a clear ExlsError (closing the response).

    Works best with ``stream=True`` requests: the body is then read only up to the limit.
    """
    chunks, size = [], 0
    for chunk in response.iter_content(chunk_size=65536):
        size += len(chunk)
        if size > MAX_BODY:
            response.close()
            raise ExlsError(f"The {what} answer is too large (over {MAX_BODY} bytes).")
        chunks.append(chunk)
    return b"".join(chunks)


def read_json(response: requests.Response, what: str) -> Any:
    """Decode a JSON body of at most MAX_BODY bytes, or raise a clear ExlsError."""
    body = read_body(response, what)
    try:
        import json

        return json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python goes
        kind = response.headers.get("Content-Type", "unknown content type")
        raise ExlsError(
            f"The {what} did not answer with JSON (HTTP {response.status_code}, {kind})."
        ) from None


def not_followed(response: requests.Response) -> str:
    """For an error line: " (a redirect to <where>, not followed)" for a 3xx, else ""."""
    if not response.is_redirect:
        return ""
    from exls_core.text import plain_text

    where = plain_text(response.headers.get("Location"), 100)
    return f" (a redirect to {where}, not followed)"


def describe_network_error(exc: requests.RequestException, url: str) -> str:
    """The failure in words, naming the URL (a provider's: made safe for the terminal)."""
    from exls_core.text import plain_text

    url = plain_text(url, 200)
    if isinstance(exc, requests.Timeout):
        return f"{url} did not answer in time"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS verification failed for {url} (set REQUESTS_CA_BUNDLE for a custom CA)"
    if isinstance(exc, requests.ConnectionError):
        return f"cannot connect to {url}"
    return f"request to {url} failed ({type(exc).__name__})"
