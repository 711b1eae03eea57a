"""The polling state machine against scripted provider answers, on a clock that never waits."""

from __future__ import annotations

import math
from typing import Any

import pytest
from device_fakes import FakeClock
from hypothesis import given, settings
from hypothesis import strategies as st

from exls_core.plugin import FlowFailed
from exls_flows_device import poller

DENIED, EXPIRED, Transient = poller.DENIED, poller.EXPIRED, poller.Transient

PENDING = (400, {"error": "authorization_pending"})
SLOW_DOWN = (400, {"error": "slow_down"})
TOKENS = (200, {"access_token": "AT", "token_type": "Bearer", "expires_in": 60})


class Script:
    """A provider that answers from a list and records when it was asked."""

    def __init__(self, clock: FakeClock, answers: list[Any]) -> None:
        self.clock = clock
        self.answers = list(answers)
        self.times: list[float] = []

    def __call__(self) -> poller.Reply:
        self.times.append(self.clock.now)
        answer = self.answers.pop(0) if self.answers else PENDING
        if isinstance(answer, BaseException):
            raise answer
        return answer


def run(
    answers: list[Any], *, interval: float = 5, expires_in: float = 600, **kwargs: Any
) -> tuple[Script, FakeClock, Any]:
    clock = FakeClock()
    script = Script(clock, answers)
    try:
        result: Any = poller.poll(
            script,
            interval=interval,
            expires_in=expires_in,
            clock=clock,
            sleep=clock.sleep,
            **kwargs,
        )
    except FlowFailed as exc:
        result = exc
    return script, clock, result


def test_success_after_pending_polls_once_per_interval() -> None:
    script, _, result = run([PENDING, PENDING, PENDING, TOKENS])
    assert script.times == [5, 10, 15, 20]
    assert result == TOKENS[1]


def test_success_on_first_poll_waits_one_interval_first() -> None:
    script, _, result = run([TOKENS])
    assert script.times == [5]
    assert result["access_token"] == "AT"


def test_each_slow_down_adds_five_seconds_for_all_later_polls() -> None:
    script, _, result = run([PENDING, SLOW_DOWN, SLOW_DOWN, PENDING, PENDING, TOKENS])
    assert script.times == [5, 10, 20, 35, 50, 65]
    assert result == TOKENS[1]


def test_slow_down_sent_with_http_429_is_honoured() -> None:
    script, _, _ = run([(429, {"error": "slow_down"}), TOKENS])
    assert script.times == [5, 15]


def test_code_expires_locally_without_polling_at_or_after_the_deadline() -> None:
    script, clock, result = run([], interval=5, expires_in=22)
    assert script.times == [5, 10, 15, 20]
    assert clock.now == 22  # waited out the countdown, then stopped
    assert isinstance(result, FlowFailed)
    assert result.message == EXPIRED
    assert result.hint is None


def test_deadline_on_a_poll_boundary_is_not_polled() -> None:
    script, clock, result = run([], interval=5, expires_in=20)
    assert script.times == [5, 10, 15]
    assert clock.now == 20
    assert result.message == EXPIRED


def test_expired_token_from_the_provider() -> None:
    script, _, result = run([PENDING, (400, {"error": "expired_token"})])
    assert script.times == [5, 10]
    assert str(result) == 'The code expired before it was approved. Run "exls login" again.'


def test_access_denied() -> None:
    script, _, result = run([PENDING, (400, {"error": "access_denied"})])
    assert script.times == [5, 10]
    assert str(result) == "Login was denied."
    assert result.message == DENIED


def test_other_errors_show_the_cleaned_description() -> None:
    body = {
        "error": "invalid_client",
        "error_description": "  Client\x1b[31m is\u202e not\n allowed  ",
    }
    _, _, result = run([(401, body)])
    assert str(result) == "Login failed: Client[31m is not allowed (invalid_client)"


def test_other_error_without_description_names_the_error() -> None:
    _, _, result = run([(400, {"error": "unsupported_grant_type"})])
    assert str(result) == "Login failed: the identity provider answered unsupported_grant_type."


def test_an_echoed_device_code_is_redacted() -> None:
    body = {"error": "invalid_grant", "error_description": "device code DC-SECRET-1 is unknown"}
    _, _, result = run([(400, body)], redact=["DC-SECRET-1"])
    assert "DC-SECRET-1" not in str(result)
    assert str(result) == "Login failed: device code [redacted] is unknown (invalid_grant)"


def test_an_error_answered_with_http_200_still_counts_as_an_error() -> None:
    # Some providers (GitHub) answer 200 with an error object.
    script, _, result = run([(200, {"error": "authorization_pending"}), TOKENS])
    assert script.times == [5, 10]
    assert result == TOKENS[1]


def test_5xx_burst_backs_off_then_returns_to_the_interval() -> None:
    problems: list[str | None] = []
    html = "<html>Bad gateway</html>"
    script, _, result = run(
        [(503, None), (502, html), (500, {"error": "server_error"}), PENDING, PENDING, TOKENS],
        on_problem=problems.append,
    )
    assert script.times == [5, 10, 20, 40, 45, 50]
    assert result == TOKENS[1]
    assert problems == [
        "the token endpoint answered HTTP 503",
        "the token endpoint answered HTTP 502",
        "the token endpoint answered HTTP 500",
        None,
    ]


def test_junk_bodies_are_retried() -> None:
    not_json = Transient("The token endpoint did not answer with JSON (HTTP 200, text/html).")
    script, _, result = run([not_json, (200, ["not", "an", "object"]), (200, "text"), TOKENS])
    assert script.times == [5, 10, 20, 40]
    assert result == TOKENS[1]


def test_connection_errors_and_timeouts_are_retried() -> None:
    script, _, result = run(
        [
            Transient("cannot connect to https://idp/token"),
            Transient("https://idp/token did not answer in time"),
            TOKENS,
        ]
    )
    assert script.times == [5, 10, 20]
    assert result == TOKENS[1]


def test_429_without_an_error_is_retried() -> None:
    script, _, result = run([(429, None), TOKENS])
    assert script.times == [5, 10]
    assert result == TOKENS[1]


def test_backoff_doubles_up_to_a_minute() -> None:
    script, _, _ = run([Transient("down")] * 8 + [TOKENS], expires_in=3600)
    gaps = [b - a for a, b in zip([0, *script.times], script.times, strict=False)]
    assert gaps == [5, 5, 10, 20, 40, 60, 60, 60, 60]


def test_backoff_is_never_faster_than_the_interval() -> None:
    script, _, _ = run([Transient("down")] * 3 + [TOKENS], interval=60, expires_in=3600)
    assert script.times == [60, 120, 180, 240]
    assert poller.backoff(65, 1) == 65  # after slow_down past the cap, still the interval


def test_failures_until_expiry_end_with_the_last_reason() -> None:
    script, clock, result = run(
        [Transient("cannot connect to https://idp/token")] * 10, expires_in=30
    )
    assert script.times == [5, 10, 20]
    assert clock.now == 30
    assert result.message == EXPIRED
    assert result.hint == "The last attempt to check failed: cannot connect to https://idp/token."


def test_a_4xx_without_an_oauth_error_fails_at_once() -> None:
    script, _, result = run([(404, {"detail": "not found"})])
    assert script.times == [5]
    assert str(result) == (
        "The identity provider's token endpoint answered HTTP 404 without an OAuth error."
    )


def test_a_2xx_object_without_tokens_is_returned_for_core_to_reject() -> None:
    _, _, result = run([(200, {"token_type": "Bearer"})])
    assert result == {"token_type": "Bearer"}


def test_expires_in_zero_does_not_poll_or_loop() -> None:
    script, clock, result = run([TOKENS], expires_in=0)
    assert script.times == []
    assert clock.now == 0
    assert clock.sleeps == []
    assert result.message == EXPIRED


def test_countdown_ticks_every_second_with_the_time_left() -> None:
    ticks: list[float] = []
    script, clock, _ = run([TOKENS], interval=5, expires_in=300, on_tick=ticks.append)
    assert ticks == [300, 299, 298, 297, 296]
    assert clock.sleeps == [1, 1, 1, 1, 1]
    assert script.times == [5]


def test_ctrl_c_during_the_wait_propagates_at_once() -> None:
    clock = FakeClock()
    clock.interrupt_after = 2
    script = Script(clock, [TOKENS])
    with pytest.raises(KeyboardInterrupt):
        poller.poll(script, interval=5, expires_in=600, clock=clock, sleep=clock.sleep)
    assert script.times == []
    assert clock.now == 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, 5),
        ("10", 5),
        ("soon", 5),
        (True, 5),
        ([5], 5),
        (math.nan, 5),
        (math.inf, 5),
        (0, 1),
        (-3, 1),
        (0.2, 1),
        (2.5, 2.5),
        (7, 7),
        (60, 60),
        (3600, 60),
        (10**12, 60),
    ],
)
def test_parse_interval(value: object, expected: float) -> None:
    assert poller.parse_interval(value) == expected


def test_a_zero_interval_is_clamped_and_still_polls_politely() -> None:
    script, _, _ = run([PENDING, PENDING, TOKENS], interval=poller.parse_interval(0))
    assert script.times == [1, 2, 3]


@pytest.mark.parametrize(
    ("value", "expected"), [(None, 900), (600, 600), (1.5, 1.5), (10**9, 3600), (3600, 3600)]
)
def test_parse_expires_in(value: object, expected: float) -> None:
    assert poller.parse_expires_in(value) == expected


@pytest.mark.parametrize("value", [0, -1, -0.5, "600", True, math.nan, math.inf, [600]])
def test_parse_expires_in_rejects_nonsense(value: object) -> None:
    with pytest.raises(FlowFailed, match=r"invalid expires_in .* a positive number of seconds"):
        poller.parse_expires_in(value)


answer = st.sampled_from(
    [
        PENDING,
        SLOW_DOWN,
        (503, None),
        (200, "junk"),
        Transient("cannot connect"),
        (429, None),
    ]
)


@settings(max_examples=200, deadline=None)
@given(
    answers=st.lists(answer, max_size=40),
    interval=st.floats(min_value=1, max_value=60),
    expires_in=st.floats(min_value=0, max_value=900),
)
def test_never_polls_too_fast_or_after_expiry(
    answers: list[Any], interval: float, expires_in: float
) -> None:
    clock = FakeClock()
    script = Script(clock, answers)
    with pytest.raises(FlowFailed) as failed:
        poller.poll(
            script, interval=interval, expires_in=expires_in, clock=clock, sleep=clock.sleep
        )
    assert failed.value.message == EXPIRED
    assert clock.now == pytest.approx(expires_in)
    assert all(t < expires_in for t in script.times)
    # The interval in force only grows (slow_down), so every gap is at least the first one,
    # and after k slow_downs at least interval + 5k.
    slow_downs = 0
    previous = 0.0
    for when, given_answer in zip(script.times, answers, strict=False):
        assert when - previous >= interval + 5 * slow_downs - 1e-9
        previous = when
        if given_answer == SLOW_DOWN:
            slow_downs += 1
