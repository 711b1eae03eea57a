"""Mix-up defences and a lying discovery document, through the real CLI.

Mix-up: a discovery document naming another issuer (OpenID Connect Discovery 4.3), an
authorization response whose ``iss`` is wrong or missing (RFC 9207, PKCE flow), and a
redirect carrying a forged state. Discovery faults: everything a discovery endpoint can do
wrong. In every case exls stops with one clear line and the previous session survives.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pytest
from adv_kit import Outcome, Outcomes, Scenarios, assert_clean_rejection, login_scenario
from lying_idp import HTTP_500, LOOPBACK_TLS_HOST, REMOTE_HOST, Fault, LyingIdP

EVIL = "https://evil.example"
HANG_ENV = {"EXLS_AUTH_HTTP_TIMEOUT": "1"}

# name -> (login_scenario keywords, the start of the expected error line)
MIX_UP: dict[str, tuple[dict[str, Any], str]] = {
    "discovery-issuer-of-another-provider": (
        {"discovery_extra": {"issuer": EVIL}},
        f"The identity provider says its issuer is '{EVIL}', but exls is configured for ",
    ),
    "discovery-issuer-with-trailing-slash": (
        {"discovery_extra": {"issuer": "{issuer}/"}},
        "The identity provider says its issuer is '",
    ),
    "discovery-issuer-missing": (
        {"discovery_extra": {"issuer": None}},
        "The identity provider says its issuer is 'None', but exls is configured for ",
    ),
    "discovery-redirected-to-another-issuer": (
        {"discovery_fault": "redirect-to-decoy"},
        "OpenID discovery failed: {issuer}/.well-known/openid-configuration answered HTTP 302 "
        "(a redirect to http://127.0.0.1:",
    ),
    "rfc9207-iss-of-another-provider": (
        {"flow": "pkce", "auth_iss": EVIL},
        f"The authorization response came from issuer '{EVIL}', not '",
    ),
    "rfc9207-iss-missing-although-advertised": (
        {
            "flow": "pkce",
            "auth_iss": None,
            "discovery_extra": {"authorization_response_iss_parameter_supported": True},
        },
        "The authorization response has no iss parameter although the identity provider "
        "advertises it (mix-up defence, RFC 9207); refusing it.",
    ),
    "redirect-with-forged-state": (
        # The sandbox's 20 s PKCE timeout: on a busy machine the stand-in browser and the
        # provider's redirect took more than the 2 s this once had, and found no listener.
        {"flow": "pkce", "auth_state": "forged-state"},
        "Browser authentication timed out.",
    ),
}

DISCOVERY: dict[str, tuple[dict[str, Any], str]] = {
    "http-500": (
        {"discovery_fault": HTTP_500},
        "OpenID discovery failed: {issuer}/.well-known/openid-configuration answered HTTP 500; "
        "check EXLS_AUTH_ISSUER.",
    ),
    "html-error-page": (
        {"discovery_fault": Fault.html(200)},
        "The OpenID discovery endpoint did not answer with JSON (HTTP 200, text/html).",
    ),
    "not-json": (
        {"discovery_fault": Fault.text("issuer=me")},
        "The OpenID discovery endpoint did not answer with JSON (HTTP 200, text/plain).",
    ),
    "json-but-not-an-object": (
        {"discovery_fault": Fault.json(["issuer"])},
        "The identity provider's discovery document is not a JSON object.",
    ),
    "several-megabytes": (
        {"discovery_fault": Fault.huge()},
        "The OpenID discovery endpoint answer is too large (over 1048576 bytes).",
    ),
    "hangs": (
        {"discovery_fault": Fault.hang(), "env": HANG_ENV},
        "Cannot reach the identity provider: {issuer}/.well-known/openid-configuration did not "
        "answer in time.",
    ),
    "connection-reset": (
        {"discovery_fault": Fault.reset()},
        "Cannot reach the identity provider: ",
    ),
    "plain-http-token-endpoint": (
        {"discovery_extra": {"token_endpoint": "http://evil.example/token"}},
        "The identity provider's token_endpoint is not https: http://evil.example/token",
    ),
    "plain-http-loopback-endpoints-of-a-remote-https-issuer": (
        {"remote_https": True},
        "The identity provider's authorization_endpoint is not https: http://127.0.0.1:",
    ),
    "plain-http-loopback-endpoints-of-an-https-loopback-issuer": (
        {"remote_https": "loopback"},
        "The identity provider's authorization_endpoint is not https: http://127.0.0.1:",
    ),
    "https-discovery-redirected-to-plain-http": (
        {"remote_https": "https-endpoints", "discovery_fault": "redirect-to-plain-http"},
        "OpenID discovery failed: https://idp.example/t/https-discovery-redirected-to-plain-http"
        "/.well-known/openid-configuration answered HTTP 302 (a redirect to http://127.0.0.1:",
    ),
    "plain-http-jwks-uri": (
        {"discovery_extra": {"jwks_uri": "http://evil.example/jwks"}},
        "The identity provider's jwks_uri is not https: http://evil.example/jwks",
    ),
    "javascript-device-endpoint": (
        {"discovery_extra": {"device_authorization_endpoint": "javascript:alert(1)"}},
        "The identity provider's discovery document has an invalid device_authorization_endpoint.",
    ),
    "no-jwks-uri": (
        {"discovery_extra": {"jwks_uri": None}},
        "The identity provider's discovery document has no jwks_uri.",
    ),
    "no-token-endpoint": (
        {"discovery_extra": {"token_endpoint": None}},
        "The identity provider's discovery document has no token_endpoint.",
    ),
    "no-device-endpoint": (
        {"discovery_extra": {"device_authorization_endpoint": None}},
        "The identity provider does not offer device login; "
        "its metadata has no device_authorization_endpoint.",
    ),
}


def scenario(idp: LyingIdP, root: Any, name: str, config: dict[str, Any]) -> Outcome:
    config = dict(config)
    issuer = f"{idp.base}/t/{name}"
    extra = config.get("discovery_extra", {})
    config["discovery_extra"] = {
        key: value.format(issuer=issuer) if isinstance(value, str) else value
        for key, value in extra.items()
    }
    remote = config.pop("remote_https", None)
    if remote is not None:  # the issuer is https://idp.example, reached through a proxy
        front = idp.tls_front(root)
        host = LOOPBACK_TLS_HOST if str(remote).startswith("loopback") else REMOTE_HOST
        issuer = f"https://{host}/t/{name}"
        config["discovery_extra"]["issuer"] = issuer
        if remote in ("https-endpoints", "loopback-https"):
            config["discovery_extra"] |= {
                key: f"{issuer}/{path}" for key, path in REMOTE_ENDPOINTS.items()
            }
        config["id_token"] = lambda t, c: t.signer.sign(t.claims_for(c.get("nonce"), iss=issuer))
        config["env"] = {**config.get("env", {}), **front.env(), "EXLS_AUTH_ISSUER": issuer}
    if "redirect-to-plain-http" in (config.get("discovery_fault"), config.get("jwks_fault")):
        # The same documents, from the same provider, but over plain http: before issue 23
        # exls followed the redirect and trusted what came back.
        assert remote is not None
        plain = idp.tenant(f"{name}-plain", discovery_extra=dict(config["discovery_extra"]))
        plain.published = None
        if config.get("discovery_fault"):
            config["discovery_fault"] = Fault.redirect(
                f"{plain.issuer}/.well-known/openid-configuration", 302
            )
        else:
            config["jwks_fault"] = Fault.redirect(f"{plain.issuer}/jwks", 307)
    if config.get("discovery_fault") == "redirect-to-decoy":
        decoy = idp.tenant(f"{name}-decoy")
        config["discovery_fault"] = Fault.redirect(
            f"{decoy.issuer}/.well-known/openid-configuration", 302
        )
    return login_scenario(idp, root, name, **config)


REMOTE_ENDPOINTS = {
    "authorization_endpoint": "authorize",
    "token_endpoint": "token",
    "device_authorization_endpoint": "device",
    "revocation_endpoint": "revoke",
    "jwks_uri": "jwks",
    "userinfo_endpoint": "userinfo",
}
# The keys are the trust anchor: a redirect of the JWKS is not followed either (the flow has
# run by then, so this is no discovery case).
JWKS_REDIRECTS: dict[str, tuple[dict[str, Any], str]] = {
    "https-jwks-redirected-to-plain-http": (
        {"remote_https": "https-endpoints", "jwks_fault": "redirect-to-plain-http"},
        "Cannot fetch the identity provider's signing keys: https://idp.example/t/"
        "https-jwks-redirected-to-plain-http/jwks answered HTTP 307 (a redirect to http://",
    ),
}
CONTROLS: dict[str, tuple[dict[str, Any], str]] = {
    "rfc9207-iss-correct-and-advertised": (
        {
            "flow": "pkce",
            "discovery_extra": {"authorization_response_iss_parameter_supported": True},
        },
        "",
    ),
    "remote-https-issuer-with-https-endpoints": ({"remote_https": "https-endpoints"}, ""),
    "https-loopback-issuer-with-https-endpoints": ({"remote_https": "loopback-https"}, ""),
}


def scenarios(idp: LyingIdP, root: Path) -> Scenarios:
    cases = MIX_UP | DISCOVERY | JWKS_REDIRECTS | CONTROLS
    return {name: partial(scenario, idp, root, name, config) for name, (config, _) in cases.items()}


def check(outcome: Outcome, expected: str) -> None:
    assert_clean_rejection(outcome.result, outcome.before, outcome.after)
    expected = expected.format(issuer=outcome.tenant.issuer)
    assert outcome.result.error.startswith(expected), outcome.result
    assert outcome.previous_intact(), outcome.status
    assert outcome.tenant.hits["token"] == 0  # no code or device code was ever exchanged


@pytest.mark.attack("mix_up")
@pytest.mark.parametrize("name", MIX_UP)
def test_mix_up_is_refused(name: str, outcomes: Outcomes[Outcome]) -> None:
    outcome = outcomes[name]
    check(outcome, MIX_UP[name][1])
    if name.startswith("rfc9207") or name == "redirect-with-forged-state":
        assert outcome.tenant.hits["authorize"] == 1  # the browser did go to the provider
        status, page = outcome.tenant.callback_replies[0]
        assert status == (400 if name == "redirect-with-forged-state" else 200)
        assert "You are signed in" not in page


@pytest.mark.attack("control")
@pytest.mark.parametrize("name", CONTROLS)
def test_an_honest_provider_logs_in(name: str, outcomes: Outcomes[Outcome]) -> None:
    outcome = outcomes[name]
    assert outcome.result.rc == 0, outcome.result
    assert outcome.logged_in_as_alice(), outcome.status


@pytest.mark.attack("discovery")
@pytest.mark.parametrize("name", DISCOVERY)
def test_a_lying_discovery_endpoint_stops_the_login(
    name: str, outcomes: Outcomes[Outcome], idp: LyingIdP
) -> None:
    outcome = outcomes[name]
    check(outcome, DISCOVERY[name][1])
    if name != "no-device-endpoint":
        assert outcome.tenant.hits["device"] == 0  # stopped before any flow began
    assert outcome.tenant.gave_up_on_every_hang(), outcome.tenant.hangs  # they last 30 s
    if name == "https-discovery-redirected-to-plain-http":
        assert idp.tenants[f"{name}-plain"].hits == {}  # nothing was fetched over plain http


@pytest.mark.attack("jwks")
@pytest.mark.parametrize("name", JWKS_REDIRECTS)
def test_a_redirected_jwks_is_not_followed(
    name: str, outcomes: Outcomes[Outcome], idp: LyingIdP
) -> None:
    outcome = outcomes[name]
    assert_clean_rejection(outcome.result, outcome.before, outcome.after)
    assert outcome.result.error.startswith(JWKS_REDIRECTS[name][1]), outcome.result
    assert outcome.previous_intact(), outcome.status
    assert idp.tenants[f"{name}-plain"].hits == {}  # the keys were not fetched over plain http
