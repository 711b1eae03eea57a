"""Which authorization parameters a route may add, and the vetting of each one.

A route can only *add* parameters, and only these (:data:`ALLOWED_PARAMS`): ``connection``
and ``organization`` (Auth0), ``domain_hint`` (Entra ID), ``kc_idp_hint`` (Keycloak), ``idp``
(Okta), ``identity_provider`` and ``idp_identifier`` (Cognito), ``hd`` (Google) and
``ui_locales``. They say *where* to sign in, never *how*: the issuer, endpoints, client id and
redirect URI come from config and discovery, and :data:`RESERVED_PARAMS` such as ``client_id``,
``redirect_uri``, ``scope``, ``state``, ``prompt`` or ``acr_values`` belong to exls and the
flows. Any other name, a non-string, empty or over-long value, or a value with control
characters is dropped with a warning that names the parameter and where it came from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from exls_core.text import has_control

ALLOWED_PARAMS = frozenset(
    {
        "connection",
        "organization",
        "domain_hint",
        "kc_idp_hint",
        "idp",
        "identity_provider",
        "idp_identifier",
        "hd",
        "ui_locales",
    }
)
# Named so the warning can say why; everything outside ALLOWED_PARAMS is refused anyway.
RESERVED_PARAMS = frozenset(
    {
        "client_id",
        "client_secret",
        "client_assertion",
        "client_assertion_type",
        "redirect_uri",
        "response_type",
        "response_mode",
        "scope",
        "state",
        "nonce",
        "code",
        "code_challenge",
        "code_challenge_method",
        "code_verifier",
        "grant_type",
        "device_code",
        "login_hint",
        "id_token_hint",
        "audience",
        "resource",
        "prompt",
        "max_age",
        "acr_values",
        "claims",
        "request",
        "request_uri",
        "registration",
        "issuer",
        "iss",
    }
)
MAX_VALUE = 256
MAX_SHOWN_NAME = 40  # characters of a refused parameter's name shown in the warning


def value_problem(value: Any) -> str | None:
    """Why ``value`` cannot be an authorization parameter's value, or None when it can."""
    if not isinstance(value, str):
        return f"its value is a {type(value).__name__}, not a string"
    if not value:
        return "its value is empty"
    if len(value) > MAX_VALUE:
        return f"its value is longer than {MAX_VALUE} characters"
    if has_control(value):
        return "its value contains control characters"
    return None


def _param_problem(name: Any, value: Any) -> str | None:
    if not isinstance(name, str):
        return "its name is not a string"
    if name.lower() in RESERVED_PARAMS:
        return "it is reserved: a route can only add parameters such as connection"
    if name not in ALLOWED_PARAMS:
        return f"it is not an SSO routing parameter (allowed: {', '.join(sorted(ALLOWED_PARAMS))})"
    return value_problem(value)


def vet_params(params: Any, source: str, warn: Callable[[str], None]) -> dict[str, str]:
    """The parameters a route may add; each refused one is reported through ``warn``."""
    if not isinstance(params, Mapping):
        warn(f"ignoring the SSO parameters from {source}: they are not a table of strings")
        return {}
    vetted: dict[str, str] = {}
    for name, value in params.items():
        problem = _param_problem(name, value)
        if problem:
            warn(f"ignoring SSO parameter {repr(name)[:MAX_SHOWN_NAME]} from {source}: {problem}")
            continue
        vetted[name] = value
    return vetted
