"""Hook implementations of the ``workload`` flow: a CI job signs in with its own identity.

Import-light: the availability check reads the environment only; the work is in flow.py.
"""

from __future__ import annotations

from exls_core.plugin import (
    PRIORITY_WORKLOAD,
    FlowAvailable,
    FlowEnvironment,
    FlowRequest,
    FlowUnavailable,
    TokenResponse,
    hookimpl,
)


@hookimpl
def exls_flow_title() -> str:
    return "workload identity flow"


@hookimpl
def exls_flow_needs_person() -> bool:
    return False  # a CI job: no email, no SSO routing, nobody to approve anything


@hookimpl
def exls_flow_priority(env: FlowEnvironment) -> FlowAvailable:
    from exls_flows_workload.sources import NoSource, find_source

    settings = env.settings  # the same settings the run gets (environment, config.toml)
    try:
        source = find_source(
            env.environ,
            token_env=settings.get("token_env"),
            token_file=settings.get("token_file"),
        )
    except NoSource as exc:
        raise FlowUnavailable(str(exc), mention=exc.ci) from None
    return FlowAvailable(PRIORITY_WORKLOAD, source.describe())


@hookimpl
def exls_flow_run(request: FlowRequest) -> TokenResponse:
    from exls_flows_workload.flow import sign_in

    return sign_in(request)


@hookimpl
def exls_flow_renew(request: FlowRequest) -> TokenResponse:
    from exls_flows_workload.flow import sign_in

    return sign_in(request)  # no refresh token: trade a fresh CI token


@hookimpl
def exls_flow_revoke(request: FlowRequest, access_token: str) -> bool:
    from exls_flows_workload.flow import revoke

    return revoke(request, access_token)
