"""Validating the device authorization answer, and the request form."""

from __future__ import annotations

from typing import Any

import pytest
from device_fakes import FakeUI

from exls_core.plugin import FlowFailed, FlowRequest
from exls_flows_device import authorization

GOOD = {
    "device_code": "DC-SECRET-1",
    "user_code": "WDJB-MJHT",
    "verification_uri": "https://idp.example/device",
    "verification_uri_complete": "https://idp.example/device?user_code=WDJB-MJHT",
    "expires_in": 600,
    "interval": 5,
}


def parse(**changes: Any) -> authorization.DeviceCode:
    body = {**GOOD, **changes}
    return authorization.parse({k: v for k, v in body.items() if v is not None})


def test_a_good_answer() -> None:
    code = parse()
    assert code.device_code == "DC-SECRET-1"
    assert code.user_code == "WDJB-MJHT"
    assert code.verification_uri == "https://idp.example/device"
    assert code.verification_uri_complete == "https://idp.example/device?user_code=WDJB-MJHT"
    assert code.qr_url == code.verification_uri_complete
    assert (code.expires_in, code.interval) == (600, 5)
    assert "DC-SECRET" not in repr(code)


def test_defaults_when_optional_fields_are_missing() -> None:
    code = parse(verification_uri_complete=None, interval=None, expires_in=None)
    assert code.verification_uri_complete is None
    assert code.qr_url == "https://idp.example/device"
    assert (code.expires_in, code.interval) == (900, 5)


def test_verification_url_as_google_spells_it() -> None:
    body = {k: v for k, v in GOOD.items() if k != "verification_uri"}
    body["verification_url"] = "https://www.google.com/device"
    assert authorization.parse(body).verification_uri == "https://www.google.com/device"


def test_the_user_code_cannot_rewrite_the_terminal() -> None:
    assert parse(user_code="\x1b[2J\x1b]0;pwned\x07WDJB-\u202eMJHT ").user_code == (
        "[2J]0;pwnedWDJB-MJHT"
    )


@pytest.mark.parametrize(
    "uri",
    [
        "javascript:alert(1)",
        "/device",
        "https://",
        "file:///etc/passwd",
        "https://idp.example/device\x1b[2J",
        "https://idp.example/de vice",
        "https://idp.example/" + "x" * 2000,
        42,
    ],
)
def test_unusable_verification_uris_are_refused(uri: object) -> None:
    with pytest.raises(FlowFailed, match="no valid verification_uri"):
        parse(verification_uri=uri)
    assert parse(verification_uri_complete=uri).verification_uri_complete is None


def test_a_complete_link_holding_the_device_code_is_not_shown() -> None:
    code = parse(verification_uri_complete="https://idp.example/device?code=DC-SECRET-1")
    assert code.verification_uri_complete is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"device_code": ""}, "has no device_code"),
        ({"device_code": 7}, "has no device_code"),
        ({"user_code": "\x1b\x07"}, "has no user_code"),
        ({"user_code": None}, "has no user_code"),
        ({"verification_uri": None}, "has no valid verification_uri"),
        ({"expires_in": 0}, r"invalid expires_in \(0\)"),
        ({"expires_in": -5}, r"invalid expires_in \(-5\)"),
        ({"expires_in": "soon"}, r"invalid expires_in \('soon'\)"),
    ],
)
def test_bad_answers(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(FlowFailed, match=message):
        parse(**changes)


def test_absurd_intervals_are_clamped() -> None:
    assert parse(interval=0).interval == 1
    assert parse(interval=86400).interval == 60
    assert parse(interval="5s").interval == 5


def test_routing_parameters_cannot_replace_client_id_or_scope() -> None:
    request = FlowRequest(
        issuer="https://idp.example",
        metadata={},
        client_id="exls-cli",
        scopes=("openid", "offline_access"),
        nonce="n",
        ui=FakeUI(),
        http=None,  # type: ignore[arg-type]  (the form needs no HTTP)
        extra_params={"client_id": "evil", "scope": "admin", "connection": "acme"},
    )
    assert authorization.form(request) == {
        "client_id": "exls-cli",
        "scope": "openid offline_access",
        "connection": "acme",
    }


@pytest.mark.parametrize("value", [None, "", 42])
def test_no_device_endpoint(value: object) -> None:
    metadata = {} if value is None else {"device_authorization_endpoint": value}
    with pytest.raises(FlowFailed, match="does not offer device login"):
        authorization.endpoint(metadata)
