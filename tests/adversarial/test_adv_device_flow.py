"""A lying device authorization endpoint and a hostile poll loop (RFC 8628).

Through the CLI: lifetimes of zero, storms of ``slow_down`` (timed for real), denial,
terminal escapes and the device code echoed back in provider text. In-process, against
the same lying provider over HTTP but with a clock that never waits: absurd intervals,
15-minute storms of ``slow_down``, ``authorization_pending``, 5xx and 429.
"""

from __future__ import annotations

import io
import itertools
import math
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from adv_kit import Outcome, Outcomes, Scenarios, assert_clean_rejection, leaks, login_scenario
from lying_idp import CLIENT_ID, HTTP_500, Fault, LyingIdP, Tenant

from exls_core.http import new_session
from exls_core.plugin import FlowFailed, FlowRequest
from exls_core.ui import TerminalUI
from exls_flows_device import flow as device_flow

pytestmark = pytest.mark.attack("device_flow")

SLOW_DOWN = {"error": "slow_down"}
PENDING = {"error": "authorization_pending"}
EXPIRED = 'The code expired before it was approved. Run "exls login" again.'
INVALID_EXPIRY = (
    "The identity provider's device authorization answer has an invalid expires_in ({}); "
    "it must be a positive number of seconds."
)


def echoing_error(form: dict[str, str]) -> dict[str, Any]:
    """An error whose text repeats the device code and tries to drive the terminal."""
    return {
        "error": "invalid_request\x1b[2J",
        "error_description": f"device_code {form['device_code']} \x1b]0;owned\x07is \u202ebad",
    }


# name -> (tenant configuration, expected error line; "" means the login must succeed)
CLI: dict[str, tuple[dict[str, Any], str]] = {
    "expires-in-zero": ({"device_answer": {"expires_in": 0}}, INVALID_EXPIRY.format("0")),
    "expires-in-negative": ({"device_answer": {"expires_in": -30}}, INVALID_EXPIRY.format("-30")),
    "expires-in-text": ({"device_answer": {"expires_in": "soon"}}, INVALID_EXPIRY.format("'soon'")),
    "slow-down-storm": (
        {"poll_script": [SLOW_DOWN] * 50, "device_answer": {"expires_in": 10}},
        EXPIRED,
    ),
    "access-denied": ({"poll_script": [{"error": "access_denied"}]}, "Login was denied."),
    "expired-token": ({"poll_script": [{"error": "expired_token"}]}, EXPIRED),
    "error-echoing-the-device-code-with-escapes": (
        {"poll_script": [echoing_error]},
        "Login failed: device_code [redacted] ]0;ownedis bad (invalid_request[2J)",
    ),
    "no-device-code": (
        {"device_answer": {"device_code": None}},
        "The identity provider's device authorization answer has no device_code.",
    ),
    "javascript-verification-uri": (
        {"device_answer": {"verification_uri": "javascript:alert(1)"}},
        "The identity provider's device authorization answer has no valid verification_uri.",
    ),
    "device-endpoint-html-500": (
        {"device_fault": Fault.html(500)},
        "The device authorization endpoint did not answer with JSON (HTTP 500, text/html).",
    ),
    "device-endpoint-refuses": (
        {"device_fault": Fault.json({"error": "unauthorized_client"}, 400)},
        "The identity provider refused the device code request: unauthorized_client",
    ),
    "interval-zero-is-clamped": ({"device_answer": {"interval": 0}}, ""),
    "user-code-with-terminal-escapes": (
        {"device_answer": {"user_code": "\x1b[2J\x1b[HWDJB-MJHT\u202e"}},
        "",
    ),
}


def scenarios(idp: LyingIdP, root: Path) -> Scenarios:
    return {name: partial(login_scenario, idp, root, name, **cfg) for name, (cfg, _) in CLI.items()}


@pytest.mark.parametrize("name", [name for name, (_, error) in CLI.items() if error])
def test_a_lying_device_endpoint_fails_the_login_cleanly(
    name: str, outcomes: Outcomes[Outcome]
) -> None:
    outcome = outcomes[name]
    assert_clean_rejection(outcome.result, outcome.before, outcome.after)
    assert outcome.result.error == CLI[name][1], outcome.result
    assert outcome.previous_intact(), outcome.status
    assert "\x1b" not in outcome.result.err and "\u202e" not in outcome.result.err
    assert leaks(outcome.tenant, outcome.result.out, outcome.result.err) == []
    polls = outcome.tenant.polls
    if name.startswith(("expires-in", "no-device", "javascript", "device-endpoint")):
        assert polls == []  # refused before polling
    if name == "slow-down-storm":
        # RFC 8628 3.5: each slow_down adds 5 s to the interval for all later polls
        assert len(polls) == 2, polls
        assert polls[1] - polls[0] >= 6 - 0.05


@pytest.mark.parametrize("name", [name for name, (_, error) in CLI.items() if not error])
def test_absurd_but_harmless_answers_are_tamed(name: str, outcomes: Outcomes[Outcome]) -> None:
    outcome = outcomes[name]
    assert outcome.result.rc == 0, outcome.result
    assert outcome.logged_in_as_alice(), outcome.status
    assert "\x1b" not in outcome.result.err and "\u202e" not in outcome.result.err
    tenant = outcome.tenant
    assert tenant.polls[0] - tenant.device_requests[0] >= 1 - 0.05  # never faster than 1 s


# --- in-process: the real flow over HTTP, with a clock that only moves when exls sleeps


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, "a zero or negative sleep would spin"
        self.now += seconds


def run_device_flow(tenant: Tenant) -> tuple[Any, list[float], float]:
    """Run the device flow; (result or FlowFailed, poll times relative to the code, clock)."""
    clock = FakeClock()
    tenant.clock = clock
    request = FlowRequest(
        issuer=tenant.issuer,
        metadata=tenant.discovery(),
        client_id=CLIENT_ID,
        scopes=("openid",),
        nonce="unused",
        ui=TerminalUI(io.StringIO()),
        http=new_session(5.0),
        http_timeout=5.0,
    )
    try:
        outcome: Any = device_flow.run(request, clock=clock, sleep=clock.sleep)
    except FlowFailed as exc:
        outcome = exc
    finally:
        request.http.close()
    start = tenant.device_requests[0]
    return outcome, [t - start for t in tenant.polls], clock.now - start


INTERVALS: dict[str, tuple[Any, float]] = {  # interval sent -> first poll after (s)
    "interval-missing": (None, 5.0),
    "interval-zero": (0, 1.0),
    "interval-negative": (-3, 1.0),
    "interval-tiny": (0.001, 1.0),
    "interval-a-day": (86400, 60.0),
    "interval-as-text": ("5s", 5.0),
    "interval-boolean": (True, 5.0),
    "interval-nan": (math.nan, 5.0),
    "interval-infinite": (math.inf, 5.0),
}


@pytest.mark.parametrize("name", INTERVALS)
def test_absurd_intervals_are_clamped(name: str, idp: LyingIdP) -> None:
    sent, first = INTERVALS[name]
    answer = {"interval": sent, "expires_in": 900}
    tenant = idp.tenant(f"inproc-{name}", device_answer=answer, poll_script=[PENDING])
    outcome, polls, _ = run_device_flow(tenant)
    assert not isinstance(outcome, FlowFailed), outcome
    assert outcome.access_token in tenant.all_secrets()["access_token"]
    assert polls[0] == pytest.approx(first)
    assert polls[1] - polls[0] == pytest.approx(first)  # the same interval after pending


def test_a_fifteen_minute_slow_down_storm_backs_off_and_expires(idp: LyingIdP) -> None:
    tenant = idp.tenant("inproc-slow-down-storm", poll_script=[SLOW_DOWN] * 1000)
    tenant.device_answer = {"expires_in": 900, "interval": 1}
    outcome, polls, ended = run_device_flow(tenant)
    assert isinstance(outcome, FlowFailed) and outcome.message == EXPIRED
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert gaps == pytest.approx([1 + 5 * k for k in range(1, len(polls))])
    assert len(polls) == 19  # 1 + 6 + 11 + ... stays under 900 s for 19 polls
    assert polls[-1] < 900 and ended == pytest.approx(900)


def test_authorization_pending_until_expiry_never_polls_late(idp: LyingIdP) -> None:
    tenant = idp.tenant("inproc-pending-forever", poll_script=[PENDING] * 1000)
    tenant.device_answer = {"expires_in": 30, "interval": 1}
    outcome, polls, ended = run_device_flow(tenant)
    assert isinstance(outcome, FlowFailed) and outcome.message == EXPIRED
    assert polls == pytest.approx([float(k) for k in range(1, 30)])
    assert ended == pytest.approx(30)


@pytest.mark.parametrize("name", ["http-500-storm", "http-429-storm", "html-storm", "reset-storm"])
def test_transient_failures_back_off_then_recover(name: str, idp: LyingIdP) -> None:
    fault = {
        "http-500-storm": HTTP_500,
        "http-429-storm": Fault.json({"message": "slow"}, 429),
        "html-storm": Fault.html(503),
        "reset-storm": Fault.reset(),
    }[name]
    tenant = idp.tenant(f"inproc-{name}", poll_script=[fault] * 6)
    tenant.device_answer = {"expires_in": 900, "interval": 1}
    outcome, polls, _ = run_device_flow(tenant)
    assert not isinstance(outcome, FlowFailed), outcome
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert polls[0] == pytest.approx(1)
    assert gaps == pytest.approx([1, 2, 4, 8, 16, 32])  # doubling, never faster than 1 s


def test_transient_failures_never_outlive_the_code(idp: LyingIdP, tmp_path: Path) -> None:
    tenant = idp.tenant("inproc-500-forever", poll_script=[HTTP_500] * 1000)
    tenant.device_answer = {"expires_in": 600, "interval": 5}
    outcome, polls, ended = run_device_flow(tenant)
    assert isinstance(outcome, FlowFailed) and outcome.message == EXPIRED
    assert outcome.hint == "The last attempt to check failed: the token endpoint answered HTTP 500."
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert max(gaps) == pytest.approx(60)  # capped back-off
    assert polls[-1] < 600 and ended == pytest.approx(600)
