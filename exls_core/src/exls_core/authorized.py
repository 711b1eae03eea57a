"""An authorized requests session for the exalsius API: :class:`AuthorizedSession`.

It is a ``requests_oauthlib.OAuth2Session``: the bearer token goes on each request through
oauthlib's client (which also refuses plain-http URLs), and everything else is ``requests``.
The token comes from the exls session (:func:`exls_core.api.access_token_and_expiry`); see
the class for how it is renewed and why not by requests-oauthlib's own refresh.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from requests import Response
from requests_oauthlib import OAuth2Session

from exls_core.api import access_token_and_expiry
from exls_core.session.token_cache import REFRESH_MARGIN

Timeout = float | tuple[float, float]
DEFAULT_TIMEOUT: Timeout = (10.0, 60.0)  # (connect, read) seconds, when a call names none
_REPLAYABLE = (str, bytes, dict, list, tuple)  # bodies requests can send twice
# RFC 6750 3: `Bearer realm="api", error="invalid_token", ...` (the quotes are optional here).
_INVALID_TOKEN = re.compile(r'\bbearer\b.*\berror\s*=\s*"?invalid_token\b', re.I | re.S)


class _Redacted(dict[str, Any]):
    """A dict that prints no values: requests-oauthlib logs the token dict and the request
    headers (``Authorization`` included) at DEBUG level."""

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{key!r}: '<redacted>'" for key in self) + "}"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return True  # oauthlib swaps an empty dict for a plain one (`headers or {}`)


@dataclass(frozen=True)
class _Held:
    """The token a session sends, and when to ask exls for a new one."""

    token: str
    expires_at: float
    renew_at: float

    @classmethod
    def of(cls, token: str, expires_at: float, now: float) -> _Held:
        # As exls auth token: renew a minute ahead; a token that lives less than two minutes
        # at half its life, so a short-lived token is not renewed at every request.
        return cls(token, expires_at, expires_at - min(REFRESH_MARGIN, (expires_at - now) / 2))


def _renew_rejected(rejected: str) -> tuple[str, float]:
    from exls_core.session.refresh import renew_access_token

    return renew_access_token(rejected)


class AuthorizedSession(OAuth2Session):  # type: ignore[misc]  # requests-oauthlib is untyped
    """A requests session that sends your exls access token to the exalsius API.

    * The token is the one ``exls auth token`` prints, renewed ahead of its expiry by exls's
      own refresh: under the session lock shared with every exls process, with refresh-token
      rotation and the checks on a refreshed ID token. requests-oauthlib's built-in refresh
      (``auto_refresh_url``) is not used: it knows none of these, would store nothing in the
      keyring, and with rotating refresh tokens two processes refreshing on their own would
      log each other out.
    * A ``401`` whose ``WWW-Authenticate`` says ``error="invalid_token"`` (a token revoked,
      say) renews the token once by a real refresh at the provider, unless another thread or
      process already did, and sends the request again when it can be replayed (no streamed
      body or files); otherwise the 401 is returned, and the next request uses the new token.
    * Every request has a timeout: ``timeout`` unless the call passes one.
    * requests drops ``Authorization`` when a redirect leads to another host, scheme or
      port, so the token never reaches another origin; it is not added again there.
    * Thread-safe token handling: threads sharing one session renew the token once.

    Errors are :class:`exls_core.ExlsError`: :class:`exls_core.NotLoggedIn`,
    :class:`exls_core.SessionExpired`, :class:`exls_core.StoreError`, ...; network errors
    of the API calls are requests' own.
    """

    def __init__(
        self,
        *,
        timeout: Timeout = DEFAULT_TIMEOUT,
        tokens: Callable[[], tuple[str, float]] = access_token_and_expiry,
        renew: Callable[[str], tuple[str, float]] = _renew_rejected,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """tokens, renew and clock are for tests: where the token comes from (a valid token
        and its expiry), how a refused one is renewed, and the time."""
        super().__init__()
        self.default_timeout = timeout
        self._tokens = tokens
        self._renew = renew
        self._clock = clock
        self._lock = threading.Lock()
        self._held: _Held | None = None

    @property
    def expires_at(self) -> float | None:
        """When the token last sent expires (seconds since the epoch); None before any."""
        held = self._held
        return held.expires_at if held is not None else None

    def _hold(self, token: str, expires_at: float) -> str:
        self._held = _Held.of(token, expires_at, self._clock())
        self.token = _Redacted(access_token=token, token_type="Bearer")  # noqa: S106
        return token

    def _current_token(self) -> str:
        seen = self._held
        if seen is not None and self._clock() < seen.renew_at:
            return seen.token
        with self._lock:
            held = self._held
            if held is not seen and held is not None and self._clock() < held.expires_at:
                return held.token  # another thread renewed it while this one waited
            return self._hold(*self._tokens())

    def _renew_refused(self, refused: str) -> None:
        with self._lock:
            held = self._held
            if held is not None and held.token != refused and self._clock() < held.expires_at:
                return  # another thread renewed it already
            self._hold(*self._renew(refused))

    def request(
        self,
        method: str,
        url: str,
        data: Any = None,
        headers: Any = None,
        withhold_token: bool = False,
        **kwargs: Any,
    ) -> Response:
        """As requests' ``request``, with the token (unless ``withhold_token``), a timeout
        when none is given, and one renewal and replay after a 401 invalid_token."""
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        if withhold_token:
            return self._send(method, url, data, headers, True, kwargs)
        self._current_token()
        response = self._send(method, url, data, headers, False, kwargs)
        refused = _refused_token(response)
        if refused is None:
            return response
        self._renew_refused(refused)
        if not _replayable(data, kwargs):
            return response
        response.close()
        return self._send(method, url, data, headers, False, kwargs)

    def _send(
        self,
        method: str,
        url: str,
        data: Any,
        headers: Any,
        withhold_token: bool,
        kwargs: dict[str, Any],
    ) -> Response:
        # oauthlib writes Authorization into the headers it is given: a copy of our own keeps
        # it out of the caller's dict, and its repr keeps it out of requests-oauthlib's log.
        headers = _Redacted(headers or {})
        response: Response = super().request(
            method, url, data=data, headers=headers, withhold_token=withhold_token, **kwargs
        )
        return response


def _refused_token(response: Response) -> str | None:
    """The token a 401 invalid_token refused: the one the final request carried (after a
    redirect to another origin it carried none, and that origin's 401 is not about it)."""
    if response.status_code != 401:
        return None
    challenge = response.headers.get("WWW-Authenticate", "")
    if not _INVALID_TOKEN.search(challenge):
        return None
    sent = response.request.headers.get("Authorization", "")
    scheme, _, token = sent.partition(" ")
    return token if scheme == "Bearer" and token else None


def _replayable(data: Any, kwargs: dict[str, Any]) -> bool:
    """Whether the same call can be sent again: no files, no stream or generator body."""
    return kwargs.get("files") is None and (data is None or isinstance(data, _REPLAYABLE))
