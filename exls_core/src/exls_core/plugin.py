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
audience, nonce); a plugin never touches the keyring. Core generated the nonce and checks it
itself: by default the ID token must carry a ``nonce`` equal to ``request.nonce``; a flow
whose protocol carries no nonce says so with :attr:`NonceCheck.NOT_IN_PROTOCOL`.

A plugin that fails to import or raises anything but :class:`FlowUnavailable` from its
priority hook is reported as broken and skipped; ``EXLS_STRICT_PLUGINS=1`` turns that into
an error while you develop, and ``EXLS_DISABLED_PLUGINS=name,...`` (flow ids, entry-point
names or distribution names) switches plugins off without uninstalling them: they are not
even imported.

Everything a flow needs comes from here: the :class:`FlowRequest` carries core's HTTP
session (``request.http``: timeouts, no redirects), the flow's settings
(``request.settings``) and the terminal (``request.ui``); :func:`read_json`,
:func:`describe_network_error`, :func:`plain_text` and :func:`is_container` are the helpers
core uses itself.
A plugin imports nothing else from ``exls_core``.

A *routing plugin* (entry-point group ``exls.routing``) maps an email address to the
organization's SSO connection through :func:`exls_sso_route`.

This module must stay cheap to import: it is loaded before any flow runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

from exls_core import entry_points
from exls_core.config import LOOPBACK_HOSTS, SSORoute
from exls_core.container import is_container
from exls_core.errors import ExlsError
from exls_core.text import REDACTED, plain_text

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    import requests

__all__ = [
    "FLOW_GROUP",
    "LOOPBACK_HOSTS",
    "PRIORITY_DEVICE_CODE",
    "PRIORITY_PKCE",
    "PROJECT",
    "REDACTED",
    "ROUTING_GROUP",
    "UI",
    "ExlsError",
    "FlowEnvironment",
    "FlowFailed",
    "FlowFallback",
    "FlowRequest",
    "FlowSettings",
    "FlowSpec",
    "FlowUnavailable",
    "RoutingSpec",
    "SSORoute",
    "StatusLine",
    "TokenResponse",
    "describe_network_error",
    "hookimpl",
    "hookspec",
    "is_container",
    "plain_text",
    "read_body",
    "read_json",
]

PROJECT = "exls"
FLOW_GROUP = entry_points.FLOW_GROUP  # the entry-point group of flow plugins
ROUTING_GROUP = entry_points.ROUTING_GROUP  # the entry-point group of routing plugins

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

# Conventional priorities, so third-party flows can place themselves between the built-ins.
PRIORITY_PKCE = 100
PRIORITY_DEVICE_CODE = 50


class FlowUnavailable(Exception):
    """Raised by :func:`exls_flow_priority`: this flow cannot run here; the message says why."""


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


@dataclass(frozen=True)
class FlowEnvironment:
    """What a priority check may look at. Tests pass fakes; plugins must not read os.environ."""

    environ: Mapping[str, str]
    platform: str  # sys.platform: "linux", "darwin", "win32", ...
    stdin_is_terminal: bool
    stderr_is_terminal: bool
    launch_browser: bool = True
    """False after ``exls login --no-browser``: the user opens URLs themselves, anywhere.
    A flow that needs a browser on this machine is unavailable then; one that can print its
    URL instead (PKCE with a pasted redirect) may still be."""


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


class FlowSettings:
    """A flow's own settings. ``request.settings.get(name)`` answers, first match wins, from:

    1. this login's command-line options (``--no-qr`` is ``qr=False``);
    2. the settings core reads for flows, ``<flow id>_<name>`` before ``<name>``
       (``get("timeout")`` in the ``pkce`` flow is ``pkce_timeout``): ``EXLS_AUTH_<NAME>``
       beats ``[auth] <name>`` in config.toml, and core has checked them before the login
       began (a bad value is a one-line error, exit 2);
    3. for any other name, the environment variable ``EXLS_AUTH_<FLOW ID>_<NAME>``, then
       ``EXLS_AUTH_<NAME>``, then ``<name>`` in the ``[flows.<flow id>]`` table of
       config.toml, as text (``true``, ``30``), checked with ``parse`` (a ValueError saying
       what is expected becomes the same kind of one-line error);
    4. ``default``.

    Without ``parse`` the answer is text: use :meth:`switch` for a yes/no setting.
    """

    def __init__(
        self,
        flow_id: str = "",
        values: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        file_table: Mapping[str, str] | None = None,
        file_path: str = "config.toml",
    ) -> None:
        self.flow_id = flow_id
        self._values = dict(values or {})
        self._environ = environ
        self._file = dict(file_table or {})  # [flows.<flow id>] of the config file at file_path
        self._file_path = file_path

    def _names(self, name: str) -> list[str]:
        return [f"{self.flow_id}_{name}", name] if self.flow_id else [name]

    def get(
        self, name: str, default: Any = None, *, parse: Callable[[str], Any] | None = None
    ) -> Any:
        names = self._names(name)
        for key in names:
            if key in self._values:
                return self._values[key]
        import os

        from exls_core.config import env_var, parse_value

        environ = os.environ if self._environ is None else self._environ
        for key in names:
            if (var := env_var(key)) in environ:
                raw = environ[var]
                return raw if parse is None else parse_value(parse, raw, var)
        if name in self._file:
            raw, where = self._file[name], f"{self._file_path}: [flows.{self.flow_id}] {name}"
            return raw if parse is None else parse_value(parse, raw, where)
        return default

    def switch(self, name: str, default: bool) -> bool:
        """A yes/no setting: ``1``/``0``, ``true``/``false``, ``yes``/``no``, ``on``/``off``."""
        from exls_core.config import parse_switch

        return bool(self.get(name, default, parse=parse_switch))


@dataclass(frozen=True)
class FlowRequest:
    """Everything a flow needs to run. Built by core from config, discovery and the prompt."""

    issuer: str
    metadata: Mapping[str, Any]
    """The issuer's OpenID discovery document; endpoints come from here, never from routes."""
    client_id: str
    scopes: tuple[str, ...]
    nonce: str
    """Send it as the ``nonce`` parameter of an authorization request; core checks the ID
    token against it (see :class:`NonceCheck`). Never hand back a nonce of your own."""
    ui: UI
    http: requests.Session
    """Core's HTTP session: use it for every request. It has a User-Agent and a timeout on
    every call, honours REQUESTS_CA_BUNDLE and HTTPS_PROXY, and follows no redirect (a 307
    would re-post a code or refresh token to another host). Read answers with
    :func:`read_json` (at most 1 MiB) and describe failures with
    :func:`describe_network_error`. Core closes it after the login."""
    settings: FlowSettings = field(default_factory=FlowSettings)
    audience: str | None = None
    email: str | None = None
    """Send as ``login_hint``."""
    extra_params: Mapping[str, str] = field(default_factory=dict)
    """Authorization parameters from SSO routing (``connection``, ``organization``...).
    Already vetted by core: add them to the authorization or device request as they are."""
    http_timeout: float = 10.0
    """Seconds; ``request.http`` applies it already. For waits of the flow's own."""
    launch_browser: bool = True
    """False after ``exls login --no-browser``: never start a browser on this machine; show
    the URL (the user may open it on another machine) and accept what the user brings back."""
    other_flows: tuple[str, ...] = ()
    """Ids of the other flows installed here that this identity provider can serve. A hint
    may suggest ``--auth-flow <id>`` for these, and only these."""
    can_fall_back: bool = False
    """True when raising FlowFallback makes exls try another flow (``auto`` with one left).
    When False, FlowFallback ends the login as an error: offer your own way on first
    (e.g. print the URL the browser failed to open)."""
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

    def __post_init__(self) -> None:
        if not isinstance(self.nonce_check, NonceCheck):  # e.g. a nonce string or a bool
            raise TypeError(
                f"TokenResponse.nonce_check must be a NonceCheck, not {self.nonce_check!r}"
            )

    @classmethod
    def from_json(
        cls, body: Mapping[str, Any], *, nonce_check: NonceCheck = NonceCheck.REQUIRED
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
            nonce_check=nonce_check,
        )

    def __repr__(self) -> str:  # never let a token reach a log or a traceback
        return f"TokenResponse(token_type={self.token_type!r}, expires_in={self.expires_in!r})"


def read_body(response: requests.Response, what: str) -> bytes:
    """The body of ``response`` (a ``stream=True`` request), at most 1 MiB, else ExlsError
    saying ``The <what> answer is too large``."""
    from exls_core import http

    return http.read_body(response, what)


def read_json(response: requests.Response, what: str) -> Any:
    """The JSON body of ``response`` (a ``stream=True`` request), at most 1 MiB; ExlsError
    when it is too large or not JSON (``The <what> did not answer with JSON (HTTP 502...)``)."""
    from exls_core import http

    return http.read_json(response, what)


def describe_network_error(exc: requests.RequestException, url: str) -> str:
    """A requests failure in words: ``<url> did not answer in time``, TLS, connection..."""
    from exls_core import http

    return http.describe_network_error(exc, url)


class FlowSpec:
    """Hooks of a flow plugin. Implement them as functions named exactly like these."""

    @hookspec(firstresult=True)
    def exls_flow_title(self) -> str:  # type: ignore[empty-body]
        """A short phrase for people, used in messages like ``Falling back to <title>...``.

        Optional; defaults to the flow id.
        """

    @hookspec(firstresult=True)
    def exls_flow_priority(  # type: ignore[empty-body]
        self, env: FlowEnvironment
    ) -> float | FlowAvailable:
        """Return how well this flow suits the environment, or raise FlowUnavailable(reason).

        Must be fast and side-effect free: no network, no processes, no prompts.
        ``auto`` runs the highest priority (ties broken by flow id). The built-ins use
        :data:`PRIORITY_PKCE` and :data:`PRIORITY_DEVICE_CODE`. Return
        :class:`FlowAvailable` to say why the flow suits this place as well.
        """

    @hookspec(firstresult=True)
    def exls_flow_run(self, request: FlowRequest) -> TokenResponse:  # type: ignore[empty-body]
        """Log the user in and return the token response; do not validate or store it.

        Raise FlowFallback when ``auto`` should try the next flow, FlowFailed for any other
        failure (its message is shown), and let KeyboardInterrupt propagate (exit 130).
        Send ``request.nonce`` in the authorization request; core then requires it in the ID
        token. A protocol without a nonce (device code, refresh token) returns
        ``TokenResponse.from_json(body, nonce_check=NonceCheck.NOT_IN_PROTOCOL)``.
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
