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
# Above every interactive flow: a job with its own identity never waits on a person.
PRIORITY_WORKLOAD = 1000


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

    @hookspec(firstresult=True)
    def exls_flow_needs_person(self) -> bool:  # type: ignore[empty-body]
        """Return False when nobody signs in: a workload (a CI job) with an identity of its own.

        Optional; defaults to True. Core then asks no email address and does no SSO
        routing, and under ``auto`` tries no interactive flow after this one (a job never
        waits on a device code). Return the workload in ``TokenResponse.workload``.
        """

    @hookspec(firstresult=True)
    def exls_flow_renew(self, request: FlowRequest) -> TokenResponse:  # type: ignore[empty-body]
        """Return a fresh token response for a session that has no refresh token.

        Optional. Core calls it from ``exls auth token`` (and every caller of the session
        API) when the access token is within the refresh margin, holding the cross-process
        session lock after re-reading the store, so concurrent processes renew once. No
        person is there: never prompt. ``request`` is built as for a login (``email`` is
        None). Core validates the answer as at login, and a workload must be the same one
        (``subject`` and ``issuer``) or the session is removed. Without this hook a session
        without a refresh token ends when its access token does.
        """

    @hookspec(firstresult=True)
    def exls_flow_revoke(  # type: ignore[empty-body]
        self, request: FlowRequest, access_token: str
    ) -> bool:
        """Revoke the session's access token at logout; return False when nothing is revocable.

        Optional. Without it core revokes the tokens itself (RFC 7009, as a public client:
        ``client_id`` and no client authentication) where the provider has a revocation
        endpoint. Implement it when revocation needs what only the flow knows (client
        authentication). Return True when revoked, False when there is nothing to revoke
        (core says nothing), raise FlowFailed(reason) when the provider refused; core
        removes the stored session in every case.
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
