"""The code exchange (RFC 6749 4.1.3 with the PKCE verifier), through requests-oauthlib."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from exls_core.config import LOOPBACK_HOSTS
from exls_core.plugin import FlowFailed
from exls_flows_pkce.messages import token_error

INSECURE_TRANSPORT = "OAUTHLIB_INSECURE_TRANSPORT"
# requests-oauthlib logs request bodies and tokens at DEBUG; they carry the code and verifier.
_CHATTY_LOGGERS = ("requests_oauthlib.oauth2_session", "oauthlib")


def exchange_code(
    token_endpoint: str,
    *,
    client_id: str,
    code: str,
    verifier: str,
    redirect_uri: str,
    timeout: float,
) -> dict[str, Any]:
    """Trade the authorization code for tokens; FlowFailed with the provider's reason."""
    import requests
    from oauthlib.oauth2 import OAuth2Error
    from requests_oauthlib import OAuth2Session

    from exls_core import __version__
    from exls_core.http import MAX_BODY, describe_network_error

    statuses: list[int] = []

    def remember_status(response: requests.Response) -> requests.Response:
        statuses.append(response.status_code)
        return response

    class BoundedSession(OAuth2Session):  # type: ignore[misc]
        """No redirects (a 307 would re-post the code and verifier elsewhere) and at most
        MAX_BODY bytes read, as for every other exls request."""

        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            kwargs.update(allow_redirects=False, stream=True)
            response = super().request(method, url, *args, **kwargs)
            body = bytearray()
            for chunk in response.iter_content(chunk_size=65536):
                body += chunk
                if len(body) > MAX_BODY:
                    response.close()
                    raise FlowFailed("The identity provider's token response is too large.")
            response._content = bytes(body)  # what requests would have read, within bounds
            return response

    # No scope on the session: oauthlib would raise if the provider granted a different one;
    # core checks what it needs from the token response itself.
    session = BoundedSession(client_id=client_id, redirect_uri=redirect_uri)
    session.headers["User-Agent"] = f"exls/{__version__}"
    session.register_compliance_hook("access_token_response", remember_status)
    try:
        with _loopback_http_allowed(token_endpoint), _silenced(_CHATTY_LOGGERS):
            token = session.fetch_token(
                token_endpoint,
                code=code,
                code_verifier=verifier,
                include_client_id=True,
                timeout=timeout,
            )
    except OAuth2Error as exc:
        status = f" (HTTP {statuses[-1]})" if statuses else ""
        if exc.error == "missing_token":
            message = f"The identity provider's token endpoint sent no access token{status}."
        else:
            message = token_error(str(exc.error), exc.description)
        raise FlowFailed(_redact(message, code, verifier)) from None
    except requests.RequestException as exc:
        reason = describe_network_error(exc, token_endpoint)
        raise FlowFailed(f"The code exchange failed: {reason}.") from None
    except (ValueError, TypeError, AttributeError, KeyError):  # not a token response at all
        status = f" (HTTP {statuses[-1]})" if statuses else ""
        raise FlowFailed(f"The identity provider's token endpoint sent no token{status}.") from None
    finally:
        session.close()
    return _plain_dict(token)


def _plain_dict(token: Mapping[str, Any]) -> dict[str, Any]:
    body = dict(token)
    if isinstance(body.get("scope"), list):  # oauthlib splits it; RFC 6749 sends a string
        body["scope"] = " ".join(body["scope"])
    return body


def _redact(text: str, *secrets: str) -> str:
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    return text


@contextmanager
def _loopback_http_allowed(url: str) -> Iterator[None]:
    """oauthlib refuses http; allow it for a loopback token endpoint only, for this call only."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        yield
        return
    if parts.scheme != "http" or (parts.hostname or "").lower() not in LOOPBACK_HOSTS:
        raise FlowFailed(f"The token endpoint must use https: {url[:100]}")
    previous = os.environ.get(INSECURE_TRANSPORT)
    os.environ[INSECURE_TRANSPORT] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(INSECURE_TRANSPORT, None)
        else:
            os.environ[INSECURE_TRANSPORT] = previous


class _DropAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextmanager
def _silenced(names: tuple[str, ...]) -> Iterator[None]:
    drop = _DropAll()
    loggers = [logging.getLogger(name) for name in names]
    for logger in loggers:
        logger.addFilter(drop)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(drop)
