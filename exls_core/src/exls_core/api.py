"""The session from Python: :func:`access_token` (here) and :func:`authorized_session`.

This module is as light as ``exls auth token``, which is what it answers with: on Linux the
token cache in the kernel keyring first (no settings read), then the store, refreshing under
the session lock when the token expires within a minute. The CLI's fast path calls it too.
"""

from __future__ import annotations

TYPE_CHECKING = False  # as typing's (mypy reads it so); importing typing costs auth token

if TYPE_CHECKING:
    from exls_core.authorized import AuthorizedSession


def access_token_and_expiry() -> tuple[str, float]:
    """:func:`access_token` and its expiry (seconds since the epoch)."""
    from exls_core.session.token_cache import cached_record

    record = cached_record()  # Linux: a few syscalls, before the settings are even read
    if record is None:
        from exls_core.session.agent_protocol import fast_record

        record = fast_record()  # an exls agent holding the session of these settings
    if record is None:
        from exls_core.session.refresh import get_token_and_expiry

        record = get_token_and_expiry()
    return record


def access_token() -> str:
    """A valid access token for the exalsius API, as ``exls auth token`` prints it.

    The same store, token cache, renewal and cross-process lock as ``exls auth token``, in this
    process (no subprocess); a token expiring within a minute is renewed first, once across
    threads and processes. Raises :class:`exls_core.NotLoggedIn`,
    :class:`exls_core.SessionExpired` or :class:`exls_core.StoreError`, all
    :class:`exls_core.ExlsError` with the CLI's message and hint (``str(error)``).
    """
    return access_token_and_expiry()[0]


def authorized_session(*, timeout: float | tuple[float, float] | None = None) -> AuthorizedSession:
    """A ``requests_oauthlib.OAuth2Session`` that sends your access token (see
    :class:`exls_core.authorized.AuthorizedSession`); timeout: the default for every request."""
    from exls_core.authorized import AuthorizedSession

    return AuthorizedSession() if timeout is None else AuthorizedSession(timeout=timeout)
