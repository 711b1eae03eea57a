"""The Python API's session side: exls_core.access_token() and renewal after a refused token,
once across threads (real threads, the real session lock, a local provider)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import pytest
from session_testkit import FakeIdP, MemoryKeyring, make_session

import exls_core
from exls_core.config import Settings
from exls_core.session import SessionStore
from exls_core.session.refresh import get_token_and_expiry, renew_access_token

T = TypeVar("T")


def store(idp: FakeIdP, expires_in: float, **overrides: object) -> None:
    session = make_session(idp.issuer, expires_at=time.time() + expires_in, **overrides)
    SessionStore().save(session)


def in_threads(count: int, call: Callable[[], T]) -> list[T]:
    """call() in `count` threads released together; their results."""
    start = threading.Barrier(count)
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        start.wait(timeout=60)
        try:
            results.append(call())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


def test_a_refused_token_is_refreshed_even_when_it_looks_valid(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP
) -> None:
    store(idp, expires_in=3000)
    token, expires_at = renew_access_token("at-initial", settings)
    assert token == "at-1" and expires_at > time.time() + 3000
    assert idp.refreshes == 1
    assert SessionStore().load().access_token == "at-1"  # type: ignore[union-attr]


def test_a_refused_token_already_replaced_is_not_refreshed_again(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP
) -> None:
    store(idp, expires_in=3000, access_token="at-newer")
    assert renew_access_token("at-initial", settings)[0] == "at-newer"
    assert idp.refreshes == 0


def test_a_refused_token_without_a_refresh_token_ends_in_session_expired(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP
) -> None:
    store(idp, expires_in=3000, refresh_token=None)
    with pytest.raises(exls_core.SessionExpired, match='Run "exls login"'):
        renew_access_token("at-initial", settings)


@pytest.mark.parametrize("expires_in", [3600, 30], ids=["hour", "short-lived"])
def test_eight_threads_across_the_expiry_refresh_once(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP, expires_in: float
) -> None:
    # A short-lived token (within the refresh margin as soon as it is issued) must not be
    # refreshed again by each thread that waited for the first refresh.
    idp.expires_in = expires_in
    store(idp, expires_in=-1)
    answers = in_threads(8, lambda: get_token_and_expiry(settings)[0])
    assert answers == ["at-1"] * 8
    assert idp.refreshes == 1


def test_threads_queue_on_their_own_lock_whatever_the_session_lock_does_for_threads(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On Linux filelock's flock happens to keep threads apart too; a POSIX record lock or
    # another store's lock need not (they belong to the process). Without any session lock:
    from exls_core.session import locking

    monkeypatch.setattr(locking, "session_lock", contextlib.nullcontext)
    store(idp, expires_in=-1)
    assert in_threads(8, lambda: get_token_and_expiry(settings)[0]) == ["at-1"] * 8
    assert idp.refreshes == 1


def test_eight_threads_refused_the_same_token_refresh_once(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP
) -> None:
    store(idp, expires_in=3000)
    answers = in_threads(8, lambda: renew_access_token("at-initial", settings)[0])
    assert answers == ["at-1"] * 8
    assert idp.refreshes == 1


def test_access_token_when_logged_out_raises_not_logged_in(
    memory_keyring: MemoryKeyring, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXLS_AUTH_ISSUER", settings.issuer)
    monkeypatch.setenv("EXLS_AUTH_CLIENT_ID", settings.client_id)
    with pytest.raises(exls_core.NotLoggedIn) as caught:
        exls_core.access_token()
    assert isinstance(caught.value, exls_core.ExlsError)
    assert str(caught.value) == 'You are not logged in. Run "exls login".'


def test_access_token_answers_as_exls_auth_token(
    memory_keyring: MemoryKeyring, settings: Settings, idp: FakeIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXLS_AUTH_ISSUER", settings.issuer)
    monkeypatch.setenv("EXLS_AUTH_CLIENT_ID", settings.client_id)
    store(idp, expires_in=-1)
    assert exls_core.access_token() == "at-1"
    assert exls_core.access_token() == "at-1"
    assert idp.refreshes == 1


def test_the_public_names() -> None:
    from exls_core.session.store import StoreError

    assert exls_core.StoreError is StoreError
    assert issubclass(exls_core.StoreError, exls_core.ExlsError)
    assert set(exls_core.__all__) <= set(dir(exls_core))
    with pytest.raises(AttributeError):
        exls_core.no_such_name  # noqa: B018
