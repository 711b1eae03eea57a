"""The hook specifications of flow and routing plugins, and the markers to implement them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pluggy

from exls_core import entry_points
from exls_core.config import SSORoute
from exls_core.plugin.request import FlowEnvironment, FlowRequest
from exls_core.plugin.response import FlowAvailable, TokenResponse

PROJECT = "exls"
FLOW_GROUP = entry_points.FLOW_GROUP  # the entry-point group of flow plugins
ROUTING_GROUP = entry_points.ROUTING_GROUP  # the entry-point group of routing plugins

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

# Conventional priorities, so third-party flows can place themselves between the built-ins.
PRIORITY_PKCE = 100
PRIORITY_DEVICE_CODE = 50


class FlowSpec:
    """Hooks of a flow plugin. Implement them as functions named exactly like these."""

    @hookspec(firstresult=True)
    def exls_flow_title(self) -> str:  # type: ignore[empty-body]
        """A short phrase for people, used in messages like ``Falling back to <title>...``.

        Optional; without it, messages call the flow ``<flow id> flow``.
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
