"""Who signed in, when a nonce-less flow's token response carries no ID token.

RFC 8628 does not require an ID token from the device grant, and several providers return
one only from the authorization code flow and from refreshes. Then the user is identified
at the provider's userinfo endpoint with the new access token (OpenID Connect Core 5.3):
``sub`` is required, ``email`` is shown. The first ID token a later refresh brings is
validated as usual and its ``sub`` must match (:mod:`exls_core.session.refresh`).

Only for protocols without a nonce: a flow that sent one (the authorization code flow) must
get an ID token back, or the login is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from exls_core.errors import ExlsError

if TYPE_CHECKING:
    from exls_core.plugin import TokenResponse


class UserinfoFailed(ExlsError):
    def __init__(self, reason: str) -> None:
        super().__init__(
            "Could not identify you: the token response has no ID token, and the identity "
            f"provider's userinfo endpoint {reason}."
        )


def may_identify(response: TokenResponse) -> bool:
    """Whether userinfo may stand in for the ID token: none came, and the protocol has no
    nonce (the device grant) that an ID token would have had to bind the answer to."""
    from exls_core.plugin import NonceCheck

    return not response.id_token and response.nonce_check is NonceCheck.NOT_IN_PROTOCOL


def fetch_userinfo(
    metadata: Mapping[str, Any], access_token: str, timeout: float
) -> dict[str, Any]:
    """The userinfo claims; UserinfoFailed unless they are a JSON object with a ``sub``."""
    import requests

    from exls_core.http import describe_network_error, new_session, read_json

    url = metadata.get("userinfo_endpoint")
    if not isinstance(url, str) or not url:
        raise UserinfoFailed("is not advertised (no userinfo_endpoint in discovery)")
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
    try:
        with new_session(timeout) as http:
            response = http.get(url, headers=headers, stream=True)
            if response.status_code != 200:
                raise UserinfoFailed(f"answered HTTP {response.status_code}")
            if "application/jwt" in response.headers.get("Content-Type", ""):
                raise UserinfoFailed("answered with a signed or encrypted response, not JSON")
            claims = read_json(response, "userinfo endpoint")
    except requests.RequestException as exc:
        raise UserinfoFailed(f"failed ({describe_network_error(exc, url)})") from None
    except UserinfoFailed:
        raise
    except ExlsError as exc:
        raise UserinfoFailed(f"failed ({exc.message.rstrip('.')})") from None
    if not isinstance(claims, dict):
        raise UserinfoFailed("answered JSON that is not an object")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise UserinfoFailed("answered without a sub claim")
    return claims
