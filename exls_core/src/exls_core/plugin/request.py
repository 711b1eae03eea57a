"""What core hands a flow: the environment a priority check sees and the login request."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from exls_core.plugin.response import FlowFailed, TokenResponse
from exls_core.plugin.settings import FlowSettings

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    import requests


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
    settings: FlowSettings = field(default_factory=FlowSettings)
    """This flow's own settings, the same :class:`FlowSettings` its run gets as
    ``request.settings``: check a setting here with ``env.settings.get(name)`` rather than
    spelling out variable names, so that a setting from config.toml counts as well and
    ``exls auth flows`` agrees with ``exls login``."""


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
