"""Sign in with a refresh token that another tool (a vault, a CI secret) already holds.

A complete flow plugin in three hooks. Core does the rest: it validates the ID token in the
answer and stores the session in the keyring; the plugin never touches either.
"""

from __future__ import annotations

from exls_core.plugin import (
    ExlsError,
    FlowAvailable,
    FlowEnvironment,
    FlowFailed,
    FlowRequest,
    FlowUnavailable,
    NonceCheck,
    TokenResponse,
    describe_network_error,
    hookimpl,
    plain_text,
    read_json,
)

SETTING = "refresh_token"  # EXLS_AUTH_REFRESH_IMPORT_REFRESH_TOKEN: a secret, see below


@hookimpl
def exls_flow_title() -> str:
    return "refresh token import"


@hookimpl
def exls_flow_priority(env: FlowEnvironment) -> FlowAvailable:
    # Fast and side-effect free: look at what is handed in, nothing else. env.settings is
    # what the run gets as request.settings, so `exls auth flows` and `exls login` agree.
    if not env.settings.get(SETTING, secret=True):
        raise FlowUnavailable(f"{env.settings.variable(SETTING)} is not set")
    # 200: above the browser; if a token was handed over, use it.
    return FlowAvailable(200, "a refresh token was handed over")


@hookimpl
def exls_flow_run(request: FlowRequest) -> TokenResponse:
    import requests  # imported here: plugins are loaded before a flow is chosen

    # secret=True: never shown in an error, and a warning if it sits in config.toml.
    refresh_token = request.settings.get(SETTING, secret=True)
    if not refresh_token:
        raise FlowFailed(
            f"Set {request.settings.variable(SETTING)} to the refresh token to import."
        )
    request.ui.message("Exchanging the imported refresh token...")
    url = request.metadata["token_endpoint"]
    try:
        # request.http, not requests.post: core's timeout, a bounded body, and no redirects
        # (a 307 would re-post the refresh token to another host).
        with request.http.post(
            url,
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": request.client_id,
            },
            headers={"Accept": "application/json"},
            stream=True,
        ) as answer:
            body = read_json(answer, "token endpoint")
    except requests.RequestException as exc:
        raise FlowFailed(
            f"The token endpoint could not be used: {describe_network_error(exc, url)}."
        ) from None
    except ExlsError as exc:  # not JSON, or too large
        raise FlowFailed(exc.message) from None
    if answer.status_code != 200:
        error = body.get("error") if isinstance(body, dict) else None
        shown = plain_text(error, 60) or "unknown_error"
        raise FlowFailed(f"The identity provider refused the imported token ({shown}).")
    # A refresh_token grant has no authorization request, hence no nonce of this login: the
    # refreshed ID token carries the original login's nonce or none (OpenID Connect Core
    # 12.2). Saying so is required; without it core insists on request.nonce and refuses.
    return TokenResponse.from_json(body, nonce_check=NonceCheck.NOT_IN_PROTOCOL)
