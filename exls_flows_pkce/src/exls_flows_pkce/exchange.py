"""The code exchange (RFC 6749 4.1.3 with the PKCE verifier of RFC 7636 4.5).

oauthlib, the protocol half of requests-oauthlib, builds the token request and reads the
answer (RFC 6749 5.1 tokens, 5.2 errors). requests-oauthlib's ``OAuth2Session.fetch_token``
is not used for the step itself, because it cannot serve it cleanly: it refuses a plain-http
token endpoint unless ``OAUTHLIB_INSECURE_TRANSPORT`` is set for the whole process (exls
allows http for a loopback token endpoint, for local providers, and nothing else), it logs
request bodies (the code and verifier) and tokens at DEBUG, and it is a session of its own,
without core's timeout, size limit and no-redirect rules. The request goes through
``request.http`` instead, like every other exls request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from exls_core.plugin import (
    LOOPBACK_HOSTS,
    REDACTED,
    ExlsError,
    FlowFailed,
    describe_network_error,
    read_body,
)
from exls_flows_pkce.messages import token_error

if TYPE_CHECKING:
    import requests


def exchange_code(
    http: requests.Session,
    token_endpoint: str,
    *,
    client_id: str,
    code: str,
    verifier: str,
    redirect_uri: str,
) -> dict[str, Any]:
    """Trade the authorization code for tokens; FlowFailed with the provider's reason."""
    import requests
    from oauthlib.oauth2 import OAuth2Error, WebApplicationClient

    parts = urlsplit(token_endpoint)
    if parts.scheme != "https" and not (
        parts.scheme == "http" and (parts.hostname or "").lower() in LOOPBACK_HOSTS
    ):
        raise FlowFailed(f"The token endpoint must use https: {token_endpoint[:100]}")
    client = WebApplicationClient(client_id)
    form = client.prepare_request_body(
        code=code, redirect_uri=redirect_uri, code_verifier=verifier, include_client_id=True
    )
    try:
        with http.post(
            token_endpoint,
            data=form,
            headers={
                "Accept": "application/json",
                "Content-Type": "application/x-www-form-urlencoded",
            },
            stream=True,
        ) as response:
            status = response.status_code
            body = read_body(response, "token endpoint").decode("utf-8", errors="replace")
    except requests.RequestException as exc:
        reason = describe_network_error(exc, token_endpoint)
        raise FlowFailed(f"The code exchange failed: {reason}.") from None
    except ExlsError as exc:  # too large
        raise FlowFailed(exc.message) from None
    try:
        # No scope passed: oauthlib would raise if the provider granted a different one;
        # core checks what it needs from the token response itself.
        token = client.parse_request_body_response(body)
    except OAuth2Error as exc:
        if exc.error == "missing_token":
            message = (
                f"The identity provider's token endpoint sent no access token (HTTP {status})."
            )
        else:
            message = token_error(str(exc.error), exc.description)
        raise FlowFailed(_redact(message, code, verifier)) from None
    # not a token response at all (RecursionError: JSON nested deeper than Python goes)
    except (ValueError, TypeError, AttributeError, KeyError, RecursionError):
        raise FlowFailed(
            f"The identity provider's token endpoint sent no token (HTTP {status})."
        ) from None
    return _plain_dict(token)


def _plain_dict(token: Mapping[str, Any]) -> dict[str, Any]:
    body = dict(token)
    if isinstance(body.get("scope"), list):  # oauthlib splits it; RFC 6749 sends a string
        body["scope"] = " ".join(body["scope"])
    return body


def _redact(text: str, *secrets: str) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text
