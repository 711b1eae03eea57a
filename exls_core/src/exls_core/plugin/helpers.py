"""The helpers core uses itself, for flows: bounded reads, network errors in words, safe text."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from exls_core.container import is_container
from exls_core.text import REDACTED, plain_text

if TYPE_CHECKING:
    import requests

__all__ = [
    "REDACTED",
    "describe_network_error",
    "is_container",
    "plain_text",
    "read_body",
    "read_json",
]


def read_body(response: requests.Response, what: str) -> bytes:
    """The body of ``response`` (a ``stream=True`` request), at most 1 MiB, else ExlsError
    saying ``The <what> answer is too large``."""
    from exls_core import http

    return http.read_body(response, what)


def read_json(response: requests.Response, what: str) -> Any:
    """The JSON body of ``response`` (a ``stream=True`` request), at most 1 MiB; ExlsError
    when it is too large or not JSON (``The <what> did not answer with JSON (HTTP 502...)``)."""
    from exls_core import http

    return http.read_json(response, what)


def describe_network_error(exc: requests.RequestException, url: str) -> str:
    """A requests failure in words: ``<url> did not answer in time``, TLS, connection..."""
    from exls_core import http

    return http.describe_network_error(exc, url)
