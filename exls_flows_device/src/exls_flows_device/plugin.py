"""Hook implementations of the ``device_code`` flow. Import-light: the work is in flow.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exls_core.plugin import (
    PRIORITY_DEVICE_CODE,
    FlowEnvironment,
    FlowFailed,
    FlowRequest,
    FlowUnavailable,
    TokenResponse,
    hookimpl,
)


@hookimpl
def exls_flow_title() -> str:
    return "device code flow"


@hookimpl
def exls_flow_priority(env: FlowEnvironment) -> float:
    return PRIORITY_DEVICE_CODE  # works anywhere: the user approves on another device


@hookimpl
def exls_flow_supported(metadata: Mapping[str, Any]) -> None:
    from exls_flows_device.authorization import endpoint

    try:
        endpoint(metadata)
    except FlowFailed as exc:
        raise FlowUnavailable(exc.message) from None


@hookimpl
def exls_flow_run(request: FlowRequest) -> TokenResponse:
    from exls_flows_device.flow import run

    return run(request)
