"""The exls plugin contract: everything a flow or routing plugin needs, in one module.

A *flow plugin* teaches ``exls login`` a way to obtain tokens (a browser, a device code,
a smart card...). It is an ordinary Python distribution that declares an entry point in the
group ``exls.flows``; the entry-point name is the flow id users type after ``--auth-flow``
and the value is a module (or object) carrying the hook implementations below::

    # pyproject.toml of your distribution
    [project.entry-points."exls.flows"]
    smartcard = "acme_exls_smartcard"

    # acme_exls_smartcard.py
    from exls_core.plugin import FlowUnavailable, hookimpl

    @hookimpl
    def exls_flow_title() -> str:
        return "smart card"

    @hookimpl
    def exls_flow_priority(env):
        if "ACME_CARD_READER" not in env.environ:
            raise FlowUnavailable("no card reader (set ACME_CARD_READER)")
        return 80

    @hookimpl
    def exls_flow_run(request):
        ...  # talk to request.metadata["token_endpoint"], return a TokenResponse

Core validates and stores what ``exls_flow_run`` returns (ID token signature, issuer,
audience, nonce); a plugin never touches the keyring. A plugin that fails to import or
raises anything but :class:`FlowUnavailable` from its priority hook is reported as broken
and skipped; ``EXLS_STRICT_PLUGINS=1`` turns that into an error while you develop.

A *routing plugin* (entry-point group ``exls.routing``) maps an email address to the
organization's SSO connection through :func:`exls_sso_route`.

This module must stay cheap to import: it is loaded before any flow runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

from exls_core import plugin_index
from exls_core.errors import ExlsError

if TYPE_CHECKING:
    from contextlib import AbstractContextManager


PROJECT = "exls"
FLOW_GROUP = plugin_index.FLOW_GROUP  # the entry-point group of flow plugins
ROUTING_GROUP = plugin_index.ROUTING_GROUP  # the entry-point group of routing plugins

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

# Conventional priorities, so third-party flows can place themselves between the built-ins.
PRIORITY_PKCE = 100
PRIORITY_DEVICE_CODE = 50


class FlowUnavailable(Exception):
    """Raised by :func:`exls_flow_priority`: this flow cannot run here; the message says why."""


class FlowFailed(ExlsError):
    """Raised by :func:`exls_flow_run`: the login failed; the message is shown as is."""


class FlowFallback(FlowFailed):
    """Raised by :func:`exls_flow_run` when ``auto`` should try the next available flow.

    Use it when the environment, not the user, defeated the flow: the browser did not open,
    nobody came back before the timeout. The message is one line such as
    ``Browser authentication timed out.``; core adds ``Falling back to <title>...``.
    A flow the user chose with ``--auth-flow`` never falls back: the message becomes the error.
    """


@dataclass(frozen=True)
class FlowEnvironment:
    """What a priority check may look at. Tests pass fakes; plugins must not read os.environ."""

    environ: Mapping[str, str]
    platform: str  # sys.platform: "linux", "darwin", "win32", ...
    stdin_is_terminal: bool
    stderr_is_terminal: bool


class UI(Protocol):
    """The terminal, as core lets flows use it. Everything goes to stderr; nothing here is data."""

    @property
    def is_terminal(self) -> bool:
        """True when stderr is an interactive terminal (live status, QR codes, colours)."""

    def message(self, text: str) -> None:
        """Print one line for the user."""

    def warning(self, text: str) -> None:
        """Print one warning line."""

    def print_rich(self, renderable: Any) -> None:
        """Print a rich renderable (a panel, a QR code); plain text when not a terminal."""

    def status(self, text: str) -> AbstractContextManager[StatusLine]:
        """A live status line for the duration of a ``with`` block (a plain line off-terminal)."""


class StatusLine(Protocol):
    def update(self, text: str) -> None:
        """Replace the status text (on a terminal in place, otherwise rate-limited lines)."""


@dataclass(frozen=True)
class FlowRequest:
    """Everything a flow needs to run. Built by core from config, discovery and the prompt."""

    issuer: str
    metadata: Mapping[str, Any]
    """The issuer's OpenID discovery document; endpoints come from here, never from routes."""
    client_id: str
    scopes: tuple[str, ...]
    nonce: str
    """Send it where the flow supports it and report it back in ``TokenResponse.nonce``."""
    ui: UI
    audience: str | None = None
    email: str | None = None
    """Send as ``login_hint``."""
    extra_params: Mapping[str, str] = field(default_factory=dict)
    """Authorization parameters from SSO routing (``connection``, ``organization``...).
    Already vetted by core: add them to the authorization or device request as they are."""
    http_timeout: float = 10.0
    """Seconds; pass as ``timeout=`` to every HTTP call."""
    flow_timeout: float | None = None
    """Seconds a flow waits for the user before giving up (PKCE: EXLS_AUTH_PKCE_TIMEOUT)."""
    callback_ports: tuple[int, ...] = ()
    """Loopback ports a redirect-based flow may listen on, in order; 0 means any free port."""
    show_qr: bool = True
    check_tokens: Callable[[TokenResponse], None] | None = None
    """Core's validation of a token response (ID token signature, issuer, audience, nonce),
    without storing anything; raises FlowFailed with the reason. Call it before telling the
    user somewhere else (a browser page) that signing in worked. Optional: core validates
    whatever ``exls_flow_run`` returns in any case."""

    def authorization_params(self) -> dict[str, str]:
        """The optional parameters every authorization-style request carries."""
        params = dict(self.extra_params)
        if self.audience:
            params["audience"] = self.audience
        if self.email:
            params["login_hint"] = self.email
        return params

    def scope_refused(self, description: str | None = None) -> FlowFailed:
        """The error to raise when the provider answers ``invalid_scope`` (RFC 6749 4.1.2.1,
        RFC 8628 3.2). It names the refused scope where that can be told (missing from the
        provider's ``scopes_supported``, or named in ``description``, the provider's text
        already made printable) and EXLS_AUTH_SCOPES, the setting to change."""
        import re

        supported = self.metadata.get("scopes_supported")
        refused = [s for s in self.scopes if isinstance(supported, list) and s not in supported]
        if not refused:
            words = {w.rstrip(".:") for w in re.findall(r"[^\s,;'\"()\[\]{}=]+", description or "")}
            refused = [s for s in self.scopes if s in words]
        detail = f"invalid_scope: {description.rstrip('.')}" if description else "invalid_scope"
        kept = [s for s in self.scopes if s not in refused]
        if refused and "openid" in kept:
            several = len(refused) > 1
            return FlowFailed(
                f"The identity provider does not accept the scope{'s' * several} "
                f'"{" ".join(refused)}" ({detail}); remove {"them" if several else "it"} from '
                f'EXLS_AUTH_SCOPES, e.g. EXLS_AUTH_SCOPES="{" ".join(kept)}".'
            )
        return FlowFailed(
            f'The identity provider does not accept the requested scopes "{" ".join(self.scopes)}" '
            f"({detail}); set EXLS_AUTH_SCOPES to the scopes it allows for this client."
        )


@dataclass(frozen=True)
class TokenResponse:
    """What a flow hands back to core: the token endpoint's answer (RFC 6749 5.1)."""

    access_token: str
    token_type: str = "Bearer"  # noqa: S105 (a type name, not a secret)
    expires_in: float | None = None
    refresh_token: str | None = None
    id_token: str | None = None
    scope: str | None = None
    nonce: str | None = None
    """The nonce the flow sent (``request.nonce``), or None when the protocol has none. Only
    then may ``id_token`` be missing: core identifies the user at the userinfo endpoint."""

    @classmethod
    def from_json(cls, body: Mapping[str, Any], *, nonce: str | None = None) -> TokenResponse:
        """Build from a token endpoint JSON body; raises FlowFailed when it is not one."""
        access_token = body.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise FlowFailed("The identity provider's token response has no access_token.")
        token_type = body.get("token_type", "Bearer")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise FlowFailed(f"Unsupported token_type {str(token_type)[:40]!r}; expected Bearer.")
        expires_in = body.get("expires_in")
        try:
            expires = float(expires_in) if expires_in is not None else None
        except (TypeError, ValueError):
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
            nonce=nonce,
        )

    def __repr__(self) -> str:  # never let a token reach a log or a traceback
        return f"TokenResponse(token_type={self.token_type!r}, expires_in={self.expires_in!r})"


@dataclass(frozen=True)
class SSORoute:
    """Where an email domain signs in: extra authorization parameters and a name for people."""

    name: str
    params: Mapping[str, str]


class FlowSpec:
    """Hooks of a flow plugin. Implement them as functions named exactly like these."""

    @hookspec(firstresult=True)
    def exls_flow_title(self) -> str:  # type: ignore[empty-body]
        """A short phrase for people, used in messages like ``Falling back to <title>...``.

        Optional; defaults to the flow id.
        """

    @hookspec(firstresult=True)
    def exls_flow_priority(self, env: FlowEnvironment) -> float:  # type: ignore[empty-body]
        """Return how well this flow suits the environment, or raise FlowUnavailable(reason).

        Must be fast and side-effect free: no network, no processes, no prompts.
        ``auto`` runs the highest priority (ties broken by flow id). The built-ins use
        :data:`PRIORITY_PKCE` and :data:`PRIORITY_DEVICE_CODE`.
        """

    @hookspec(firstresult=True)
    def exls_flow_run(self, request: FlowRequest) -> TokenResponse:  # type: ignore[empty-body]
        """Log the user in and return the token response; do not validate or store it.

        Raise FlowFallback when ``auto`` should try the next flow, FlowFailed for any other
        failure (its message is shown), and let KeyboardInterrupt propagate (exit 130).
        Send ``request.nonce`` where the protocol allows and return it in ``TokenResponse``.
        """

    @hookspec(firstresult=True)
    def exls_flow_supported(self, metadata: Mapping[str, Any]) -> None:
        """Raise FlowUnavailable(reason) when this identity provider lacks what the flow needs.

        Optional. ``metadata`` is the provider's discovery document (completed from its RFC
        8414 metadata). Called after discovery and before any flow runs: a flow named with
        ``--auth-flow`` then fails with the reason, and ``auto`` never falls back into it.
        Must be fast: no network, no prompts.
        """


class RoutingSpec:
    """Hooks of a routing plugin (entry-point group ``exls.routing``)."""

    @hookspec(firstresult=True)
    def exls_sso_route(self, email: str, domain: str) -> SSORoute | None:
        """Return the SSO route for this email address, or None to let the next provider answer.

        The first non-None answer wins; core's own config table and routing endpoint answer
        last. Core only ever adds ``route.params`` to authorization requests, and refuses
        reserved or unknown parameter names, so a route cannot change the issuer or client.
        """
