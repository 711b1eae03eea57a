"""Which store holds the session: the OS keyring (``keyring``), the Linux kernel keyring
(``kernel``) or the exls agent's memory (``agent``, :mod:`exls_core.session.agent`).

``EXLS_SESSION_STORE`` (or ``[auth] session_store``) is one of those or ``auto`` (the
default). ``auto`` is the keyring, except on Linux where keyring has no usable backend (its
fail or null backend: no Secret Service) and the user chose none (no PYTHON_KEYRING_BACKEND,
no keyring config file): there the kernel keyring holds the session if the kernel allows
keyctl here, and the exls agent when it refuses (a container's seccomp profile).
A chosen keyring backend always wins, even a disabled one.

In a container that shares the host's user namespace (:func:`exls_core.container.
shares_host_keyring`) the kernel keyring is shared with every process of the uid on the host:
there ``auto`` keeps neither the session nor the token cache in it, and uses the agent (for a
Secret Service found in the container, the agent is its token cache).

``EXLS_AGENT_SOCKET`` naming an agent that answers (a session forwarded over SSH, see
:mod:`exls_core.session.agent_forward`) comes first in ``auto``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from exls_core.container import shares_host_keyring
from exls_core.errors import UsageError
from exls_core.session.keyring_calls import Keyring, KeyringFailure, bounded
from exls_core.session.store import SessionStore
from exls_core.session.token_cache import for_settings

if TYPE_CHECKING:
    from exls_core.config import Settings


def _backend_and_choice() -> tuple[Any, bool]:
    """keyring's backend, and whether the user configured one (environment or file)."""
    import keyring
    import keyring.core

    backend = keyring.get_keyring()
    if os.environ.get("PYTHON_KEYRING_BACKEND"):
        return backend, True
    try:
        configured = keyring.core.load_config() is not None
    except Exception:  # a broken config file is still the user's choice: keyring says why
        configured = True
    return backend, configured


def is_unusable(keyring_backend: Any) -> bool:
    """keyring's fail backend (nothing found) or null backend (disabled)."""
    return type(keyring_backend).__module__ in ("keyring.backends.fail", "keyring.backends.null")


T = TypeVar("T")


class FailedKeyring(Keyring):
    """keyring failed (or hung) while exls chose the store: every call reports that failure
    at once instead of asking keyring, and waiting, again."""

    def __init__(self, failure: KeyringFailure) -> None:
        super().__init__()
        self.failure = failure

    @property
    def backend(self) -> Any:
        raise self.failure

    def _call(self, operation: Callable[[Any], T]) -> T:
        raise self.failure


def _kernel_allowed() -> bool:
    from exls_core.session import kernel_keyring as kk

    try:
        kk.persistent_keyring()
    except kk.KeyringRefused:
        return False
    except kk.KernelKeyringError:
        pass  # allowed, but failing: the kernel store reports it with its own fix
    return True


def _agent_store(settings: Settings) -> SessionStore:
    from exls_core.session.agent_store import AgentSessionStore

    if sys.platform == "win32":
        raise UsageError("The exls agent (session_store agent) runs on Linux and macOS only.")
    return AgentSessionStore(settings, cache=for_settings(False))  # drops stale records


def open_store(settings: Settings) -> SessionStore:
    """The store for these settings, with the token cache on Linux; a sandboxed run's own."""
    from exls_core.paths import SANDBOX_ENV, sandbox_dir

    sandbox = sandbox_dir()
    if sandbox is not None:  # never the real store or cache, whatever else is configured
        if sys.platform != "linux":
            from exls_core.errors import UsageError

            raise UsageError(
                f"{SANDBOX_ENV} keeps the session in the Linux kernel keyring, which "
                f"{sys.platform} does not have; unset {SANDBOX_ENV} to use this system's keyring."
            )
        from exls_core.session.kernel_store import SandboxSessionStore

        return SandboxSessionStore(sandbox)
    cache = for_settings(settings.token_cache)
    choice = settings.session_store
    if choice == "agent":
        return _agent_store(settings)
    if choice == "kernel":
        from exls_core.session.kernel_store import KernelSessionStore

        return KernelSessionStore(cache=cache)
    if choice == "auto" and _named_agent_answers():
        return _agent_store(settings)
    if choice == "keyring" or sys.platform != "linux":
        return SessionStore(cache=cache)
    try:
        backend, configured = bounded(_backend_and_choice)
    except KeyringFailure as failure:
        return SessionStore(FailedKeyring(failure), cache=cache)  # reports it when used
    if configured or not is_unusable(backend):
        if not configured and settings.token_cache is None and shares_host_keyring():
            # A Secret Service inside the container: its token cache is the agent's memory,
            # not the host's kernel keyring.
            from exls_core.session.agent_store import AgentTokenCache

            cache = AgentTokenCache()
        return SessionStore(Keyring(backend), cache=cache)
    if not shares_host_keyring() and _kernel_allowed():
        from exls_core.session.kernel_store import KernelSessionStore

        return KernelSessionStore(cache=cache)
    return _agent_store(settings)


def _named_agent_answers() -> bool:
    """EXLS_AGENT_SOCKET names an agent that answers (as SSH_AUTH_SOCK: one forwarded over
    SSH by ``exls auth agent``, or mounted into a container): ``auto`` uses it. When nothing
    answers there (the forward closed), this machine's own store decides."""
    from exls_core.session import agent_protocol as proto

    if sys.platform == "win32" or not os.environ.get(proto.SOCKET_ENV, "").strip():
        return False
    return proto.answers(proto.socket_path())


def reachable_stores(settings: Settings) -> list[SessionStore]:
    """Every store exls can reach on this machine, whatever the settings choose: on Linux the
    keyring (when it has a usable backend) and the kernel keyring (when the kernel allows it;
    with the session an older exls may have left there, see kernel_store.LegacyKernelStore).

    A session may sit in one the settings do not choose: logged in over SSH (the kernel
    keyring), then in a desktop terminal (the Secret Service). Logout clears them all;
    ``auth status`` mentions what it finds in another. A new backend adds itself here.
    """
    from exls_core.paths import sandbox_dir

    if sys.platform != "linux" or sandbox_dir() is not None:  # a sandbox reaches its own only
        return [open_store(settings)]
    cache = for_settings(settings.token_cache)
    stores: list[SessionStore] = []
    try:
        backend, _configured = bounded(_backend_and_choice)
    except KeyringFailure:
        backend = None  # not reachable now
    if backend is not None and not is_unusable(backend):
        stores.append(SessionStore(Keyring(backend), cache=cache))
    if _kernel_allowed():
        from exls_core.session.kernel_store import KernelSessionStore, LegacyKernelStore

        stores += [KernelSessionStore(cache=cache), LegacyKernelStore(cache=cache)]
    if _agent_running():
        stores.append(_agent_store(settings))
    return stores


def _agent_running() -> bool:
    """An exls agent's socket is in its place (a dead one's too: logout then says so)."""
    from exls_core.errors import ExlsError
    from exls_core.session.agent_protocol import checked_socket_path

    try:
        return checked_socket_path()[1]
    except ExlsError:
        return False


def other_stores(settings: Settings, chosen: SessionStore) -> list[SessionStore]:
    """reachable_stores but the chosen one (told apart by kind)."""
    return [store for store in reachable_stores(settings) if store.kind != chosen.kind]
