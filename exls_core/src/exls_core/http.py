"""HTTP for exls: every request has a timeout, a User-Agent, and a bounded response size.

The timeout bounds each read; the whole exchange (request and answer) is bounded too, by
:mod:`exls_core.deadline`, so a provider that trickles its answer cannot hold exls for long.

Custom CAs and proxies work through requests' standard variables (REQUESTS_CA_BUNDLE,
SSL_CERT_FILE via CURL_CA_BUNDLE, HTTPS_PROXY, NO_PROXY).
"""

from __future__ import annotations

from typing import Any

import requests

from exls_core import __version__
from exls_core.deadline import Exchange, Sending, TooSlow, deadline_for, mount
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
        self._exchanges: set[Exchange] = set()  # streamed answers not read to the end yet
        mount(self)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        """requests' request, bounded as a whole (see :mod:`exls_core.deadline`): with
        ``stream=True`` until the answer is read (:func:`read_body`) or closed."""
        kwargs.setdefault("timeout", self.default_timeout)
        kwargs.setdefault("allow_redirects", False)
        seconds = deadline_for(kwargs["timeout"])
        if seconds is None:
            return super().request(method, url, *args, **kwargs)
        exchange = Exchange(seconds)
        try:
            with Sending(exchange):
                response = super().request(method, url, *args, **kwargs)
        except requests.RequestException:
            exchange.finish()
            if exchange.expired:
                raise exchange.too_slow() from None
            raise
        except BaseException:
            exchange.finish()
            raise
        if exchange.expired:  # cut off in the headers: http.client takes that as their end
            exchange.finish()
            response.close()
            raise exchange.too_slow()
        if not kwargs.get("stream"):
            exchange.finish()
            return response
        self._exchanges.add(exchange)
        response.exls_exchange = exchange  # type: ignore[attr-defined]
        close = response.close

        def close_and_finish() -> None:
            self._end(exchange)
            close()

        response.close = close_and_finish  # type: ignore[method-assign]
        return response

    def _end(self, exchange: Exchange) -> None:
        exchange.finish()
        self._exchanges.discard(exchange)

    def close(self) -> None:
        for exchange in list(self._exchanges):
            self._end(exchange)
        super().close()

    def get(self, url: str | bytes, **kwargs: Any) -> Any:
        kwargs.setdefault("allow_redirects", False)
        return self.request("GET", url, **kwargs)


def new_session(timeout: float = DEFAULT_TIMEOUT) -> TimeoutSession:
    return TimeoutSession(timeout)


def read_body(response: requests.Response, what: str) -> bytes:
    """The body, at most MAX_BODY bytes, or a clear ExlsError (closing the response).

    Works best with ``stream=True`` requests: the body is then read only up to the limit.
    """
    exchange: Exchange | None = getattr(response, "exls_exchange", None)
    chunks, size = [], 0
    try:
        for chunk in response.iter_content(chunk_size=65536):
            size += len(chunk)
            if size > MAX_BODY:
                response.close()
                raise ExlsError(f"The {what} answer is too large (over {MAX_BODY} bytes).")
            chunks.append(chunk)
    except requests.RequestException:
        if exchange is not None and exchange.expired:
            raise exchange.too_slow() from None
        raise
    finally:
        if exchange is not None:
            exchange.finish()
    if exchange is not None and exchange.expired:  # cut off: what came may be a part only
        raise exchange.too_slow()
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
    if isinstance(exc, TooSlow):
        return f"{url} was too slow: {exc}"
    if isinstance(exc, requests.Timeout):
        return f"{url} did not answer in time"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS verification failed for {url} (set REQUESTS_CA_BUNDLE for a custom CA)"
    if isinstance(exc, requests.ConnectionError):
        return f"cannot connect to {url}"
    return f"request to {url} failed ({type(exc).__name__})"
