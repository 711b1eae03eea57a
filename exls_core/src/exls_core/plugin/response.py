"""What a flow hands back to core: availability, failures and the token response."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from exls_core.errors import ExlsError


class FlowUnavailable(Exception):
    """Raised by :func:`exls_flow_priority`: this flow cannot run here; the message says why.

    ``exls auth flows`` always shows the reason. ``exls login`` says it too, before the flow
    it chose instead, unless ``mention=False``: for a flow that is simply not meant for this
    place (the workload flow outside CI), where the reason would be noise to a person.
    """

    def __init__(self, reason: str = "", *, mention: bool = True) -> None:
        super().__init__(reason)
        self.mention = mention


@dataclass(frozen=True)
class FlowAvailable:
    """What :func:`exls_flow_priority` may return instead of a bare number: the priority and
    why the flow can run here (``"a display and xdg-open"``). ``exls login`` says it before
    the flow starts and ``exls auth flows`` lists it, as it does the reasons of unavailable
    flows."""

    priority: float
    reason: str | None = None


class FlowFailed(ExlsError):
    """Raised by :func:`exls_flow_run`: the login failed; the message is shown as is."""


class FlowFallback(FlowFailed):
    """Raised by :func:`exls_flow_run` when ``auto`` should try the next available flow.

    Use it when the environment, not the user, defeated the flow: the browser did not open,
    nobody came back before the timeout. The message is one line such as
    ``Browser authentication timed out.``; core adds ``Falling back to <title>...``.
    A flow the user chose with ``--auth-flow`` never falls back: the message becomes the error.
    """


class NonceCheck(Enum):
    """Whether core checks the ID token's ``nonce`` claim against ``request.nonce``.

    Core generated ``request.nonce`` and keeps it, so the check never depends on what a
    plugin reports. Say nothing and you get :attr:`REQUIRED`, the safe default; choose
    :attr:`NOT_IN_PROTOCOL` only when the protocol you speak has no place for a nonce.
    """

    REQUIRED = "required"
    """The default, for every flow that sends an authorization request (a browser redirect,
    PKCE, a smart card talking to ``/authorize``): send ``request.nonce`` there; the ID token
    must then carry a ``nonce`` claim equal to it, or the login is refused (replay defence,
    OpenID Connect Core 3.1.3.7)."""

    NOT_IN_PROTOCOL = "not_in_protocol"
    """The protocol carries no nonce, so the claim is left unchecked (everything else is
    checked): the device authorization grant (RFC 8628) and a ``refresh_token`` grant, such
    as importing a refresh token from another tool, whose refreshed ID token may carry the
    nonce of the original login or none at all (OpenID Connect Core 12.2)."""


@dataclass(frozen=True)
class Workload:
    """A non-person identity a flow signed in as: a CI job, a service account.

    ``subject`` and ``issuer`` are those of the workload's own token (a GitHub Actions job is
    ``repo:acme/train:ref:refs/heads/main`` from ``https://token.actions.githubusercontent.com``),
    which the identity provider verified when it traded it. With a workload core neither
    requires an ID token nor asks userinfo (an ID token that comes anyway is still checked);
    it stores the session as a workload, and a renewal must name the same one.
    """

    subject: str
    issuer: str

    def __post_init__(self) -> None:
        if not all(isinstance(v, str) and v for v in (self.subject, self.issuer)):
            raise TypeError("Workload needs a non-empty subject and issuer")


@dataclass(frozen=True)
class TokenResponse:
    """What a flow hands back to core: the token endpoint's answer (RFC 6749 5.1)."""

    access_token: str
    token_type: str = "Bearer"  # noqa: S105 (a type name, not a secret)
    expires_in: float | None = None
    refresh_token: str | None = None
    id_token: str | None = None
    scope: str | None = None
    nonce_check: NonceCheck = NonceCheck.REQUIRED
    """How core checks the ID token's nonce; see :class:`NonceCheck`. Only a
    ``NOT_IN_PROTOCOL`` answer may lack ``id_token``: core then identifies the user at the
    userinfo endpoint."""
    workload: Workload | None = None
    """Set by a flow that signs in a workload, not a person (see :class:`Workload`)."""

    def __post_init__(self) -> None:
        if not isinstance(self.nonce_check, NonceCheck):  # e.g. a nonce string or a bool
            raise TypeError(
                f"TokenResponse.nonce_check must be a NonceCheck, not {self.nonce_check!r}"
            )

    @classmethod
    def from_json(
        cls,
        body: Mapping[str, Any],
        *,
        nonce_check: NonceCheck = NonceCheck.REQUIRED,
        workload: Workload | None = None,
    ) -> TokenResponse:
        """Build from a token endpoint JSON body; raises FlowFailed when it is not one.

        ``nonce_check``: leave it out after an authorization request carrying
        ``request.nonce``; pass ``NonceCheck.NOT_IN_PROTOCOL`` for a device code or refresh
        token grant."""
        access_token = body.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise FlowFailed("The identity provider's token response has no access_token.")
        token_type = body.get("token_type", "Bearer")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise FlowFailed(f"Unsupported token_type {str(token_type)[:40]!r}; expected Bearer.")
        expires_in = body.get("expires_in")
        try:
            expires = float(expires_in) if expires_in is not None else None
        except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond float
            expires = -1.0
        if expires is not None and not 0 <= expires < 10 * 365 * 86400:  # NaN fails this too
            raise FlowFailed("The identity provider sent an invalid expires_in.")

        def text(name: str) -> str | None:
            value = body.get(name)
            return value if isinstance(value, str) and value else None

        return cls(
            access_token=access_token,
            token_type="Bearer",  # noqa: S106
            expires_in=expires,
            refresh_token=text("refresh_token"),
            id_token=text("id_token"),
            scope=text("scope"),
            nonce_check=nonce_check,
            workload=workload,
        )

    def __repr__(self) -> str:  # never let a token reach a log or a traceback
        return f"TokenResponse(token_type={self.token_type!r}, expires_in={self.expires_in!r})"
