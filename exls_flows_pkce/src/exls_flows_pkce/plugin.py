"""The ``pkce`` flow's hooks. Core imports this to rank flows, so it stays cheap to import."""

from __future__ import annotations

from exls_core.plugin import FlowAvailable, FlowEnvironment, FlowRequest, TokenResponse, hookimpl


@hookimpl
def exls_flow_title() -> str:
    return "browser flow (PKCE)"


@hookimpl
def exls_flow_priority(env: FlowEnvironment) -> FlowAvailable:
    from exls_flows_pkce.availability import priority

    return priority(env)


@hookimpl
def exls_flow_run(request: FlowRequest) -> TokenResponse:
    from exls_flows_pkce.flow import run

    return run(request)
