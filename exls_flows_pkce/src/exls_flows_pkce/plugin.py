"""The ``pkce`` flow's hooks. Core imports this to rank flows, so it stays cheap to import."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exls_core.plugin import (
    FlowAvailable,
    FlowEnvironment,
    FlowRequest,
    FlowUnavailable,
    TokenResponse,
    hookimpl,
)


@hookimpl
def exls_flow_title() -> str:
    return "browser flow (PKCE)"


@hookimpl
def exls_flow_priority(env: FlowEnvironment) -> FlowAvailable:
    from exls_flows_pkce.availability import priority

    return priority(env)


@hookimpl
def exls_flow_supported(metadata: Mapping[str, Any]) -> None:
    from exls_flows_pkce.flow import provider_problem

    problem = provider_problem(metadata)
    if problem is not None:
        raise FlowUnavailable(problem)


@hookimpl
def exls_flow_run(request: FlowRequest) -> TokenResponse:
    from exls_flows_pkce.flow import run

    return run(request)
