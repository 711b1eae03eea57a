"""Trading the CI token at the token endpoint, in one of two modes (the ``mode`` setting):

* ``exchange`` (default), RFC 8693: ``grant_type=urn:ietf:params:oauth:grant-type:token-exchange``
  with the CI token as ``subject_token`` (Auth0 Custom Token Exchange, Okta, Keycloak);
* ``assertion``, RFC 7523 client authentication: ``grant_type=client_credentials`` with the CI
  token as ``client_assertion`` (Entra ID workload identity federation).

Every refusal becomes one line naming what to check on the provider's side. Neither the CI
token nor the client secret is ever part of a message: the provider's own text is shown only
after both are masked.
"""

from __future__ import annotations

from dataclasses import dataclass

from exls_core.plugin import FlowFailed, FlowRequest, NonceCheck, TokenResponse

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 (a URN)
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105 (a URN)
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 (a URN)
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MODES = ("exchange", "assertion")
OPENID_SCOPES = {"openid", "profile", "email", "address", "phone", "offline_access"}


def _mode(value: str) -> str:
    mode = value.strip().lower()
    if mode not in MODES:
        raise ValueError("exchange or assertion")
    return mode


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("a non-empty value")
    return value.strip()


@dataclass(frozen=True, repr=False)
class Config:
    """The flow's settings, read once per login (a bad value fails before any request)."""

    mode: str
    subject_token_type: str
    token_env: str | None
    token_file: str | None
    token_audience: str  # the audience the CI token is requested for
    client_secret: str | None  # EXLS_AUTH_WORKLOAD_CLIENT_SECRET (a secret setting)

    def __repr__(self) -> str:  # never the secret
        return f"Config(mode={self.mode!r})"


def read_config(request: FlowRequest) -> Config:
    """The settings (``EXLS_AUTH_WORKLOAD_<NAME>`` or ``[flows.workload] <name>``; the
    client secret from the environment only, as CI secrets arrive)."""
    settings = request.settings
    return Config(
        mode=settings.get("mode", "exchange", parse=_mode),
        subject_token_type=settings.get("subject_token_type", ID_TOKEN_TYPE, parse=_text),
        token_env=settings.get("token_env", parse=_text),
        token_file=settings.get("token_file", parse=_text),
        token_audience=settings.get("token_audience", request.issuer, parse=_text),
        client_secret=settings.get("client_secret", parse=_text, secret=True),
    )


def token_request(request: FlowRequest, config: Config, ci_token: str) -> dict[str, str]:
    """The token endpoint form for ``config.mode``."""
    data = {"client_id": request.client_id}
    if config.mode == "assertion":
        data.update(
            grant_type="client_credentials",
            client_assertion_type=JWT_BEARER,
            client_assertion=ci_token,
        )
    else:
        data.update(
            grant_type=TOKEN_EXCHANGE,
            subject_token=ci_token,
            subject_token_type=config.subject_token_type,
            requested_token_type=ACCESS_TOKEN_TYPE,
        )
        if config.client_secret:
            data["client_secret"] = config.client_secret
    # No refresh token wanted; and client_credentials signs in no user, so no OpenID scopes
    # (Entra ID accepts only the API's "<app id URI>/.default" there).
    dropped = OPENID_SCOPES if config.mode == "assertion" else {"offline_access"}
    scopes = [s for s in request.scopes if s not in dropped]
    if scopes:
        data["scope"] = " ".join(scopes)
    if request.audience:
        data["audience"] = request.audience
    return data


def trade(request: FlowRequest, config: Config, ci_token: str) -> TokenResponse:
    """POST the form; the token response, or FlowFailed saying what to check."""
    import requests

    from exls_core.plugin import ExlsError, describe_network_error, read_json

    url = request.metadata["token_endpoint"]
    try:
        with request.http.post(
            url,
            data=token_request(request, config, ci_token),
            headers={"Accept": "application/json"},
            stream=True,  # request.http follows no redirect: the CI token stays here
        ) as response:
            status = response.status_code
            try:
                body = read_json(response, "token endpoint")
            except ExlsError:
                if status == 200:
                    raise
                body = None
    except requests.RequestException as exc:
        raise FlowFailed(
            f"Could not reach the token endpoint: {describe_network_error(exc, url)}."
        ) from None
    if status == 200 and isinstance(body, dict):
        return TokenResponse.from_json(body, nonce_check=NonceCheck.NOT_IN_PROTOCOL)
    raise refusal(request, config, ci_token, status, body)


def refusal(
    request: FlowRequest, config: Config, ci_token: str, status: int, body: object
) -> FlowFailed:
    """The provider's refusal as one line with what to check."""
    from exls_core.plugin import plain_text
    from exls_flows_workload.sources import claims

    data = body if isinstance(body, dict) else {}
    secrets = [ci_token, config.client_secret or ""]
    error = plain_text(data.get("error"), 60, redact=secrets)
    said = plain_text(data.get("error_description"), 160, redact=secrets).rstrip(".")
    detail = f"{error}: {said}" if error and said else error or f"HTTP {status}"
    token = claims(ci_token)
    issuer, subject = (plain_text(token[claim], 200, redact=secrets) for claim in ("iss", "sub"))
    trust = f"issuer {issuer}, subject {subject}, audience {config.token_audience}"
    client = request.client_id
    grant = "client_credentials" if config.mode == "assertion" else "token exchange"
    if error == "invalid_scope":
        return request.scope_refused(said or None)
    if error == "invalid_grant":
        return FlowFailed(
            f"The identity provider refused the CI token ({detail}); check that it trusts "
            f"{trust} for client {client}."
        )
    if error == "invalid_target":
        return FlowFailed(
            f"The identity provider does not issue tokens for the audience "
            f"{request.audience or '(none)'} to this job ({detail}); set EXLS_AUTH_AUDIENCE "
            "to the API the trust configuration allows."
        )
    if error == "unauthorized_client":
        return FlowFailed(
            f"Client {client} may not use {grant} ({detail}); allow that grant for it on the "
            "identity provider, or set EXLS_AUTH_CLIENT_ID to the client that may."
        )
    if error == "invalid_client" and config.mode == "assertion":
        return FlowFailed(
            f"The identity provider refused the CI token as client assertion for {client} "
            f"({detail}); check the federated credential: {trust}."
        )
    if error == "invalid_client":
        return FlowFailed(
            f"The identity provider did not accept client {client} ({detail}); check "
            f"EXLS_AUTH_CLIENT_ID and {request.settings.variable('client_secret')} (the client "
            "secret, when the provider requires one)."
        )
    if error in ("unsupported_grant_type", "invalid_request"):
        return FlowFailed(
            f"The identity provider refused the {grant} request ({detail}); check that it "
            f"supports {grant} for client {client} and accepts subject_token_type "
            f"{config.subject_token_type} (EXLS_AUTH_WORKLOAD_SUBJECT_TOKEN_TYPE)."
        )
    return FlowFailed(f"The {grant} failed: the token endpoint answered {detail}; try again.")
