"""The browser flow, start to end: listen, open the browser, wait, exchange the code.

Without a browser here (``--no-browser``, or one that would not open when no other flow is
left to fall back to) the link is printed instead and the user may paste the address the
browser ended on (:mod:`exls_flows_pkce.paste`).

Order matters (RFC 8252): the listener is bound before the browser opens; the browser's
request is answered only after the code exchange, so its page tells the truth; the listener
is closed on every path, Ctrl+C included.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import IO, Any

from exls_core.plugin import (
    ExlsError,
    FlowFailed,
    FlowFallback,
    FlowRequest,
    TokenResponse,
    plain_text,
)
from exls_flows_pkce import pages
from exls_flows_pkce.browser import Launch, Opener, open_url
from exls_flows_pkce.exchange import exchange_code
from exls_flows_pkce.listener import CONNECTION_TIMEOUT, CallbackListener, PortsBusy
from exls_flows_pkce.paste import (
    countdown,
    printable_url,
    suggest_device_flow,
    wait_elsewhere,
    wait_for_redirect,
)
from exls_flows_pkce.pkce import authorization_url, challenge, new_state, new_verifier

DEFAULT_TIMEOUT = 120.0
BROWSER_GRACE = 0.5  # seconds to let a missing browser fail before printing the URL


def run(
    request: FlowRequest,
    *,
    opener: Opener = open_url,
    browser_grace: float = BROWSER_GRACE,
    connection_timeout: float = CONNECTION_TIMEOUT,
    clock: Callable[[], float] = time.monotonic,
    stdin: IO[str] | None = None,
) -> TokenResponse:
    """Sign in; ``stdin`` (default sys.stdin) is where a pasted address may come from."""
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
            ports=request.settings.get("callback_ports") or (0,),
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
        code = _wait_for_code(
            request,
            listener,
            url,
            opener,
            browser_grace,
            clock,
            sys.stdin if stdin is None else stdin,
        )
        try:
            token = exchange_code(
                request.http,
                token_endpoint,
                client_id=request.client_id,
                code=code,
                verifier=verifier,
                redirect_uri=listener.redirect_uri,
            )
            response = TokenResponse.from_json(token)  # core requires request.nonce in it
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
    stdin: IO[str] | None,
) -> str:
    """Open the browser (or not) and wait for the response; the code, or FlowFailed /
    FlowFallback. Without a browser here the link is printed and a pasted address accepted."""
    timeout = request.settings.get("timeout") or DEFAULT_TIMEOUT  # EXLS_AUTH_PKCE_TIMEOUT
    deadline = clock() + timeout
    elsewhere = partial(
        wait_elsewhere, request, listener, url, deadline=deadline, clock=clock, stdin=stdin
    )
    if not request.launch_browser:
        callback = elsewhere(why="Not opening a browser here (--no-browser).")
    else:
        request.ui.message("Opening your browser...")
        # On Linux the browser's command line is readable by every local user: it gets an
        # address of the listener that redirects this user's browser only (browser_url).
        launch = Launch(opener, listener.browser_url(url))
        launch.done.wait(browser_grace)
        opened = None
        if not launch.failed:
            request.ui.message(f"If your browser did not open, visit: {printable_url(url)}")
            opened = wait_for_redirect(
                request,
                listener,
                doing="Waiting for you to sign in in your browser",
                deadline=deadline,
                clock=clock,
                timed_out=_nothing_came_back(request, timeout),
                # a launcher that waited for its browser, then failed
                gave_up=lambda: launch.failed,
            )
        if opened is None and request.can_fall_back:
            raise FlowFallback("Could not open a browser.")
        callback = opened or elsewhere(why="Could not open a browser here.")
    if callback.error == "invalid_scope":
        description = callback.error_description
        raise request.scope_refused(plain_text(description) if description else None)
    if callback.failure or not callback.code:
        raise FlowFailed(callback.failure or "The browser's redirect carried no code.")
    return callback.code


def _nothing_came_back(request: FlowRequest, timeout: float) -> FlowFallback:
    """The browser opened (as far as exls can tell) but the redirect never came."""
    device = suggest_device_flow(request, ", or --auth-flow device_code to skip the browser")
    return FlowFallback(
        "Browser authentication timed out.",
        hint=f"Nothing came back from the browser within {countdown(timeout)}: did it open on "
        f"another machine or display? Next time use exls login --no-browser to paste the "
        f"address it ends on{device}.",
    )
