"""The workload flow from start to finish: get the CI token, trade it, name the workload."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace

from exls_core.plugin import FlowFailed, FlowRequest, TokenResponse, Workload
from exls_flows_workload import exchange, sources


def sign_in(request: FlowRequest, environ: Mapping[str, str] = os.environ) -> TokenResponse:
    """Login and renewal alike: nothing is prompted, nothing is written."""
    config = exchange.read_config(request)
    source = _source(config, environ)
    ci_token = sources.fetch_token(
        source, audience=config.token_audience, http=request.http, environ=environ
    )
    claims = sources.claims(ci_token)
    response = exchange.trade(request, config, ci_token)
    return replace(response, workload=Workload(claims["sub"], claims["iss"]))


def _source(config: exchange.Config, environ: Mapping[str, str]) -> sources.Source:
    try:
        return sources.find_source(
            environ, token_env=config.token_env, token_file=config.token_file
        )
    except sources.NoSource as exc:
        text = str(exc)
        raise FlowFailed(f"{text[0].upper()}{text[1:]}.") from None


def revoke(
    request: FlowRequest, access_token: str, environ: Mapping[str, str] = os.environ
) -> bool:
    """RFC 7009 with the client authentication of the login; False without an endpoint.

    In assertion mode the client authenticates with a CI token, which may be gone once the
    job step ends: then nothing can be revoked, and the token simply expires."""
    endpoint = request.metadata.get("revocation_endpoint")
    if not isinstance(endpoint, str):
        return False
    config = exchange.read_config(request)
    data = {
        "token": access_token,
        "token_type_hint": "access_token",
        "client_id": request.client_id,
    }
    if config.mode == "assertion":
        try:
            source = _source(config, environ)
            ci_token = sources.fetch_token(
                source, audience=config.token_audience, http=request.http, environ=environ
            )
        except FlowFailed:
            return False
        data.update(client_assertion_type=exchange.JWT_BEARER, client_assertion=ci_token)
    elif config.client_secret:
        data["client_secret"] = config.client_secret
    import requests

    from exls_core.plugin import describe_network_error

    try:
        with request.http.post(endpoint, data=data, stream=True) as response:
            status = response.status_code
    except requests.RequestException as exc:
        raise FlowFailed(describe_network_error(exc, endpoint)) from None
    if status != 200:
        raise FlowFailed(f"{endpoint} answered HTTP {status}")
    return True
