"""The exls plugin contract: everything a flow or routing plugin needs, in one place.

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

A flow that signs in no person (a CI job) returns False from ``exls_flow_needs_person``
(no email prompt, no SSO routing) and names the identity in ``TokenResponse.workload``
(:class:`Workload`: core then requires no ID token and asks no userinfo). Without a refresh
token, ``exls_flow_renew`` says how to get a fresh token (core calls it under its session
lock), and ``exls_flow_revoke`` how to revoke at logout (or that nothing is revocable).

A *routing plugin* (entry-point group ``exls.routing``) maps an email address to the
organization's SSO connection through :func:`exls_sso_route`.

Plugins import from ``exls_core.plugin`` itself, never from its submodules, which only keep
the contract readable: ``hooks`` (the hook specifications and markers), ``request`` (what
core hands a flow), ``response`` (what a flow hands back), ``settings`` (a flow's own
settings) and ``helpers``. The package must stay cheap to import: it is loaded before any
flow runs.
"""

from __future__ import annotations

from exls_core.config import LOOPBACK_HOSTS, SSORoute
from exls_core.errors import ExlsError
from exls_core.plugin.helpers import (
    REDACTED,
    describe_network_error,
    is_container,
    plain_text,
    read_body,
    read_json,
)
from exls_core.plugin.hooks import (
    FLOW_GROUP,
    PRIORITY_DEVICE_CODE,
    PRIORITY_PKCE,
    PRIORITY_WORKLOAD,
    PROJECT,
    ROUTING_GROUP,
    FlowSpec,
    RoutingSpec,
    hookimpl,
    hookspec,
)
from exls_core.plugin.request import UI, FlowEnvironment, FlowRequest, StatusLine
from exls_core.plugin.response import (
    FlowAvailable,
    FlowFailed,
    FlowFallback,
    FlowUnavailable,
    NonceCheck,
    TokenResponse,
    Workload,
)
from exls_core.plugin.settings import FlowSettings

__all__ = [
    "FLOW_GROUP",
    "LOOPBACK_HOSTS",
    "PRIORITY_DEVICE_CODE",
    "PRIORITY_PKCE",
    "PRIORITY_WORKLOAD",
    "PROJECT",
    "REDACTED",
    "ROUTING_GROUP",
    "UI",
    "ExlsError",
    "FlowAvailable",
    "FlowEnvironment",
    "FlowFailed",
    "FlowFallback",
    "FlowRequest",
    "FlowSettings",
    "FlowSpec",
    "FlowUnavailable",
    "NonceCheck",
    "RoutingSpec",
    "SSORoute",
    "StatusLine",
    "TokenResponse",
    "Workload",
    "describe_network_error",
    "hookimpl",
    "hookspec",
    "is_container",
    "plain_text",
    "read_body",
    "read_json",
]
