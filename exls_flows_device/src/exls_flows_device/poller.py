"""Polling the token endpoint until the user approves (RFC 8628 3.4 and 3.5).

Pure logic: the clock, the sleeper and the HTTP call are injected, so every timing rule
can be tested without waiting. The first poll comes one interval after the code was
issued; ``slow_down`` adds 5 s for all later polls; transient failures back off (doubling,
up to a minute) but never poll faster than the interval; nothing is polled at or after the
code's expiry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from exls_core.plugin import FlowFailed, plain_text

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"

DEFAULT_INTERVAL = 5.0  # RFC 8628 3.2: when the provider gives none
MIN_INTERVAL = 1.0  # an interval of 0 would hammer the provider
MAX_INTERVAL = 60.0  # a silly interval would outlast the code
SLOW_DOWN_STEP = 5.0  # RFC 8628 3.5
MAX_BACKOFF = 60.0  # longest wait after repeated transient failures (unless interval is longer)
DEFAULT_EXPIRES_IN = 900.0  # when the provider omits it; its expired_token still ends the wait
MAX_EXPIRES_IN = 3600.0  # never wait on one code for more than an hour
TICK = 1.0  # countdown refresh

EXPIRED = 'The code expired before it was approved. Run "exls login" again.'
DENIED = "Login was denied."

Reply = tuple[int, Any]
"""HTTP status and decoded JSON body of one token request."""


class Transient(Exception):
    """A poll that may succeed if repeated (network, timeout, 5xx, not JSON).

    The message is safe to show: it never holds the request's form or the answer's body.
    """


def parse_interval(value: object) -> float:
    """The polling interval in seconds: 5 when absent or not a number, clamped to 1..60."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return DEFAULT_INTERVAL
    return min(max(float(value), MIN_INTERVAL), MAX_INTERVAL)


def parse_expires_in(value: object) -> float:
    """The code's lifetime in seconds; raises FlowFailed when it is present but not positive."""
    if value is None:
        return DEFAULT_EXPIRES_IN
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        shown = plain_text(repr(value), 40, drop_controls=True)
        raise FlowFailed(
            "The identity provider's device authorization answer has an invalid expires_in "
            f"({shown}); it must be a positive number of seconds."
        )
    return min(float(value), MAX_EXPIRES_IN)


def backoff(interval: float, failures: int) -> float:
    """Delay after ``failures`` transient failures in a row: interval, 2x, 4x... capped."""
    return max(interval, min(interval * 2.0 ** (failures - 1), MAX_BACKOFF))


def _refusal(body: dict[str, Any], redact: Sequence[str]) -> FlowFailed:
    code = plain_text(body.get("error"), 60, redact=redact, drop_controls=True) or "unknown error"
    description = plain_text(body.get("error_description"), 300, redact=redact, drop_controls=True)
    if description:
        return FlowFailed(f"Login failed: {description} ({code})")
    return FlowFailed(f"Login failed: the identity provider answered {code}.")


def poll(
    post: Callable[[], Reply],
    *,
    interval: float,
    expires_in: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    on_tick: Callable[[float], None] = lambda remaining: None,
    on_problem: Callable[[str | None], None] = lambda reason: None,
    redact: Sequence[str] = (),
) -> dict[str, Any]:
    """Poll until the token endpoint answers with tokens; return that JSON object.

    ``post`` makes one token request and returns (status, JSON body) or raises Transient.
    ``on_tick`` gets the seconds left about every TICK; ``on_problem`` the reason the
    last poll failed transiently (None once a poll got through). Raises FlowFailed on
    denial, expiry or any other refusal; KeyboardInterrupt from ``sleep`` propagates.
    """
    start = clock()
    deadline = start + expires_in
    next_poll = start + interval
    failures = 0
    problem: str | None = None

    def wait_until(moment: float) -> None:
        while (now := clock()) < moment:
            on_tick(deadline - now)
            sleep(min(TICK, moment - now))

    while True:
        wait_until(min(next_poll, deadline))
        if clock() >= deadline:
            hint = f"The last attempt to check failed: {problem.rstrip('.')}." if problem else None
            raise FlowFailed(EXPIRED, hint=hint)
        try:
            status, body = post()
            if status >= 500:
                raise Transient(f"the token endpoint answered HTTP {status}")
            error = body.get("error") if isinstance(body, dict) else None
            if error is None and status == 429:
                raise Transient("the token endpoint answered HTTP 429 (too many requests)")
            if error is None and 200 <= status < 300 and not isinstance(body, dict):
                raise Transient("the token endpoint answered JSON that is not an object")
        except Transient as exc:
            failures += 1
            problem = str(exc)
            on_problem(problem)
            next_poll = clock() + backoff(interval, failures)
            continue
        if failures or problem:
            failures, problem = 0, None
            on_problem(None)
        if error == "authorization_pending":
            pass
        elif error == "slow_down":
            interval += SLOW_DOWN_STEP
        elif error == "expired_token":
            raise FlowFailed(EXPIRED)
        elif error == "access_denied":
            raise FlowFailed(DENIED)
        elif error is not None:
            raise _refusal(body, redact)
        elif 200 <= status < 300:
            return dict(body)
        else:
            raise FlowFailed(
                f"The identity provider's token endpoint answered HTTP {status} "
                "without an OAuth error."
            )
        next_poll = clock() + interval
