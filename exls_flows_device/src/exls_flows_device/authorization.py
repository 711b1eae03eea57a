"""The device authorization request and its answer (RFC 8628 3.1 and 3.2)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from exls_core.plugin import ExlsError, FlowFailed, FlowRequest, plain_text
from exls_flows_device.poller import parse_expires_in, parse_interval

if TYPE_CHECKING:
    pass

MAX_URL = 2000
UNSUPPORTED = (
    "The identity provider does not offer device login; "
    "its metadata has no device_authorization_endpoint."
)


@dataclass(frozen=True)
class DeviceCode:
    """What the provider issued. ``device_code`` is a secret: it is left out of the repr."""

    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: float
    interval: float

    @property
    def qr_url(self) -> str:
        return self.verification_uri_complete or self.verification_uri


def endpoint(metadata: Mapping[str, Any]) -> str:
    url = metadata.get("device_authorization_endpoint")
    if not isinstance(url, str) or not url:
        raise FlowFailed(UNSUPPORTED)
    return url


def form(request: FlowRequest) -> dict[str, str]:
    """The request body; client_id and scope are set last so nothing can replace them."""
    return {
        **request.authorization_params(),
        "client_id": request.client_id,
        "scope": " ".join(request.scopes),
    }


def _web_url(value: object) -> str | None:
    """``value`` if it is an http(s) URL that is safe to print as is, else None."""
    if (
        not isinstance(value, str)
        or len(value) > MAX_URL
        or plain_text(value, MAX_URL, drop_controls=True) != value
    ):
        return None
    if " " in value:
        return None
    parts = urlsplit(value)
    return value if parts.scheme in {"https", "http"} and parts.hostname else None


def parse(body: object) -> DeviceCode:
    """Validate the device authorization answer; raises FlowFailed saying what is wrong."""
    if not isinstance(body, dict):
        raise FlowFailed("The identity provider's device authorization answer is not an object.")
    device_code = body.get("device_code")
    if not isinstance(device_code, str) or not device_code:
        raise FlowFailed("The identity provider's device authorization answer has no device_code.")
    user_code = plain_text(body.get("user_code"), 64, redact=[device_code], drop_controls=True)
    if not user_code:
        raise FlowFailed("The identity provider's device authorization answer has no user_code.")
    # "verification_url" is what some providers (Google) send instead.
    uri = _web_url(body.get("verification_uri", body.get("verification_url")))
    if uri is None:
        raise FlowFailed(
            "The identity provider's device authorization answer has no valid verification_uri."
        )
    complete = _web_url(body.get("verification_uri_complete"))
    if complete and device_code in complete:
        complete = None  # never print the device code, even if a provider put it there
    return DeviceCode(
        device_code=device_code,
        user_code=user_code,
        verification_uri=uri,
        verification_uri_complete=complete,
        expires_in=parse_expires_in(body.get("expires_in")),
        interval=parse_interval(body.get("interval")),
    )


def request_code(request: FlowRequest) -> DeviceCode:
    """POST the device authorization request and return the validated answer."""
    import requests

    from exls_core.plugin import describe_network_error, read_json

    url = endpoint(request.metadata)
    try:
        with request.http.post(
            url,
            data=form(request),
            headers={"Accept": "application/json"},
            stream=True,  # request.http: core's timeout, and no redirects
        ) as response:
            status = response.status_code
            body = read_json(response, "device authorization endpoint")
    except requests.RequestException as exc:
        reason = describe_network_error(exc, url)
        raise FlowFailed(f"Could not start the device code flow: {reason}.") from None
    except ExlsError as exc:  # not JSON, or too large
        raise FlowFailed(exc.message) from None
    if isinstance(body, dict) and "error" in body:
        code = plain_text(body.get("error"), 60, drop_controls=True) or "unknown error"
        description = plain_text(body.get("error_description"), 300, drop_controls=True)
        if code == "invalid_scope":
            raise request.scope_refused(description)
        detail = f"{description} ({code})" if description else code
        raise FlowFailed(f"The identity provider refused the device code request: {detail}")
    if not 200 <= status < 300:
        raise FlowFailed(f"The device authorization endpoint answered HTTP {status}.")
    return parse(body)
