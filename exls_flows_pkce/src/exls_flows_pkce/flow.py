"""The browser flow, start to end: listen, open the browser, wait, exchange the code.

Order matters (RFC 8252): the listener is bound before the browser opens; the browser's
request is answered only after the code exchange, so its page tells the truth; the listener
is closed on every path, Ctrl+C included.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from exls_core.errors import ExlsError
from exls_core.plugin import FlowFailed, FlowFallback, FlowRequest, TokenResponse
from exls_flows_pkce import pages
from exls_flows_pkce.browser import Launch, Opener, open_url
from exls_flows_pkce.exchange import exchange_code
from exls_flows_pkce.listener import CONNECTION_TIMEOUT, CallbackListener, PortsBusy
from exls_flows_pkce.messages import plain
from exls_flows_pkce.pkce import authorization_url, challenge, new_state, new_verifier

DEFAULT_TIMEOUT = 120.0
BROWSER_GRACE = 0.5  # seconds to let a missing browser fail before printing the URL
STATUS_EVERY = 1.0


def run(
    request: FlowRequest,
    *,
    opener: Opener = open_url,
    browser_grace: float = BROWSER_GRACE,
    connection_timeout: float = CONNECTION_TIMEOUT,
    clock: Callable[[], float] = time.monotonic,
) -> TokenResponse:
    metadata = request.metadata
    problem = provider_problem(metadata)
    if problem is not None:
        raise FlowFallback(problem)
    endpoint, token_endpoint = metadata["authorization_endpoint"], metadata["token_endpoint"]

    state, verifier = new_state(), new_verifier()
    try:
        listener = CallbackListener(
            state=state,
            issuer=request.issuer,
            ports=request.callback_ports or (0,),
            require_iss=metadata.get("authorization_response_iss_parameter_supported") is True,
            connection_timeout=connection_timeout,
            answer_timeout=request.http_timeout + 5.0,
        )
    except PortsBusy as exc:
        raise FlowFailed(
            f"Cannot listen for the browser's redirect: {exc}.",
            hint="Set EXLS_AUTH_CALLBACK_PORTS to free ports (0 means any free port).",
        ) from None

    with listener:
        url = authorization_url(
            endpoint,
            client_id=request.client_id,
            redirect_uri=listener.redirect_uri,
            scopes=request.scopes,
            state=state,
            nonce=request.nonce,
            code_challenge=challenge(verifier),
            extra=request.authorization_params(),
        )
        code = _wait_for_code(request, listener, url, opener, browser_grace, clock)
        try:
            token = exchange_code(
                token_endpoint,
                client_id=request.client_id,
                code=code,
                verifier=verifier,
                redirect_uri=listener.redirect_uri,
                timeout=request.http_timeout,
            )
            response = TokenResponse.from_json(token, nonce=request.nonce)
            if request.check_tokens is not None:
                request.check_tokens(response)  # the page must not say "signed in" too early
        except ExlsError as exc:  # FlowFailed, or core refusing the ID token
            listener.finish(pages.failure(exc.message))
            raise
        listener.finish(pages.success())
        return response


def provider_problem(metadata: Mapping[str, Any]) -> str | None:
    """Why this provider cannot do the browser flow (see the exls_flow_supported hook)."""
    endpoint = metadata.get("authorization_endpoint")
    token_endpoint = metadata.get("token_endpoint")
    if not isinstance(endpoint, str) or not isinstance(token_endpoint, str):
        return "The identity provider offers no browser login (no endpoints)."
    methods = metadata.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" not in methods:
        return "The identity provider does not support PKCE with S256."
    return None


def _wait_for_code(
    request: FlowRequest,
    listener: CallbackListener,
    url: str,
    opener: Opener,
    browser_grace: float,
    clock: Callable[[], float],
) -> str:
    """Open the browser and wait for the redirect; the code, or FlowFailed / FlowFallback."""
    timeout = request.flow_timeout or DEFAULT_TIMEOUT
    deadline = clock() + timeout
    launch = Launch(opener, url)
    launch.done.wait(browser_grace)
    if launch.failed:
        raise FlowFallback("Could not open a browser.")
    request.ui.message(f"If your browser did not open, visit: {url}")

    with request.ui.status(_waiting(timeout)) as status:
        while True:
            remaining = deadline - clock()
            if remaining <= 0:
                raise FlowFallback("Browser authentication timed out.")
            callback = listener.wait(min(STATUS_EVERY, remaining))
            if callback is not None:
                break
            if launch.failed:  # a launcher that waited for its browser, then failed
                raise FlowFallback("Could not open a browser.")
            status.update(_waiting(deadline - clock()))
    if callback.error == "invalid_scope":
        description = callback.error_description
        raise request.scope_refused(plain(description) if description else None)
    if callback.failure or not callback.code:
        raise FlowFailed(callback.failure or "The browser's redirect carried no code.")
    return callback.code


def _waiting(remaining: float) -> str:
    minutes, seconds = divmod(max(0, math.ceil(remaining)), 60)
    return (
        f"Waiting for you to sign in in your browser... {minutes}:{seconds:02d} left "
        "(Ctrl+C to cancel)"
    )
