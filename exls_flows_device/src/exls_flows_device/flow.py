"""The device code flow from start to finish: request a code, show it, poll, hand back tokens."""

from __future__ import annotations

import time
from collections.abc import Callable

from exls_core.plugin import FlowRequest, NonceCheck, TokenResponse
from exls_flows_device import authorization, display, poller


def run(
    request: FlowRequest,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,  # interruptible: Ctrl+C stops it at once
) -> TokenResponse:
    authorization.endpoint(request.metadata)  # fail before any network if unsupported
    show_qr = request.settings.switch("qr", True)  # --no-qr; a bad value fails here, first
    code = authorization.request_code(request)
    display.show_code(request.ui, code, show_qr=show_qr)
    with request.ui.status(display.waiting_text(code.expires_in)) as line:
        countdown = display.Countdown(line)
        body = poller.poll(
            token_poster(request, code),
            interval=code.interval,
            expires_in=code.expires_in,
            clock=clock,
            sleep=sleep,
            on_tick=countdown.tick,
            on_problem=countdown.problem,
            redact=[code.device_code],
        )
    # RFC 8628 has no authorization request to carry a nonce: say so, or core requires one.
    return TokenResponse.from_json(body, nonce_check=NonceCheck.NOT_IN_PROTOCOL)


def token_poster(
    request: FlowRequest, code: authorization.DeviceCode
) -> Callable[[], poller.Reply]:
    """One token request per call; network trouble and non-JSON answers become Transient."""
    import requests

    from exls_core.plugin import ExlsError, describe_network_error, read_json

    url = request.metadata["token_endpoint"]
    data = {
        "grant_type": poller.GRANT_TYPE,
        "device_code": code.device_code,
        "client_id": request.client_id,
    }

    def post() -> poller.Reply:
        try:
            with request.http.post(
                url,
                data=data,
                headers={"Accept": "application/json"},
                stream=True,  # request.http follows no redirect: the code stays here
            ) as response:
                if response.status_code >= 500:  # its body is often an HTML error page
                    raise poller.Transient(
                        f"the token endpoint answered HTTP {response.status_code}"
                    )
                return response.status_code, read_json(response, "token endpoint")
        except requests.RequestException as exc:
            raise poller.Transient(describe_network_error(exc, url)) from None
        except ExlsError as exc:  # not JSON, or too large
            raise poller.Transient(exc.message) from None

    return post
