"""The current access token in the kernel keyring, so ``exls auth token`` costs a few syscalls.

On every Linux machine, whatever the session store, the token of the stored session is kept
in one ``user`` key, ``exalsius_cli:token``, in exls's keyring in the user's persistent
keyring (:func:`exls_core.session.kernel_keyring.store_keyring`, usable by this uid with
possession only), with a kernel timeout at the token's expiry. ``exls auth token`` finds
it there in a few system calls and reads it: no keyring, no D-Bus, no click, not even the
settings.

Instead of the settings, a record names the inputs they come from (:func:`inputs`: the
environment variables that choose the issuer, client, config file and store, and the
identity of both config files); a record written under other inputs is not used. Any doubt
(another format, other inputs, a token expiring within a minute, a kernel that refuses)
means None, and the caller reads the store as before.

The store keeps the record coherent (:class:`exls_core.session.store.SessionStore`): every
write and removal drops it first, a committed write puts the new one, and a reader that
refills it checks that the store did not change meanwhile. The record also names the store
version it was taken from (the commit's generation). ``EXLS_TOKEN_CACHE=0`` (or ``[auth]
token_cache = false``) stops reads and writes; drops still happen. In a container that shares
the host's user namespace the kernel keyring is shared with every process of the uid on the
host (:func:`exls_core.container.shares_host_keyring`): there the cache is off unless turned
on explicitly (``EXLS_TOKEN_CACHE=1`` or ``token_cache = true``); a record names whether
its writer shared the host's keyring, so the container never reads one the host wrote. A
sandboxed run (``EXLS_SANDBOX``) has no cache: it neither reads, writes nor drops the real
one. While ``EXLS_AGENT_SOCKET`` names an agent (a session forwarded over SSH), the cache is
not read: that agent's session comes first.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # as typing's (mypy reads it so); importing typing costs auth token

if TYPE_CHECKING:
    from collections.abc import Callable

    from exls_core.session.model import HotRecord, Session

NAME = "token"
FORMAT = "exls-token-cache/1"
CACHE_ENV = "EXLS_TOKEN_CACHE"
REFRESH_MARGIN = 60.0  # refresh.py refreshes tokens expiring within this many seconds
_SEP = "\0"  # can occur in none of the fields: not in tokens, environment values or paths
_FIELDS = 5  # format, expiry, binding, generation, token; then the inputs
_ON = ("1", "true", "yes", "on")

# What decides which session `exls auth token` reads and for which issuer and client.
INPUT_VARIABLES = (
    "EXLS_AUTH_ISSUER",
    "EXLS_AUTH_CLIENT_ID",
    "EXLS_CONFIG_FILE",
    "EXLS_SESSION_STORE",
    CACHE_ENV,
    "PYTHON_KEYRING_BACKEND",
    "DBUS_SESSION_BUS_ADDRESS",  # which Secret Service, if any
    "XDG_CONFIG_HOME",
    "HOME",
)


def _file_identity(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return f"{path}:-"
    return f"{path}:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def inputs() -> list[str]:
    """The environment and the config files' identities (an edit changes ctime and mtime)."""
    from exls_core.paths import user_dir

    env = os.environ
    values = [f"{n}={env[n]}" if n in env else n for n in INPUT_VARIABLES]
    config_root = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    override = env.get("EXLS_CONFIG_FILE")
    exls_config = (
        os.path.expanduser(override)
        if override
        else os.path.join(user_dir("config"), "config.toml")
    )
    values.append(_file_identity(exls_config))
    # keyring's own config file (it can choose the backend, so the store): keyring's Linux path.
    values.append(_file_identity(os.path.join(config_root, "python_keyring", "keyringrc.cfg")))
    return values


def record_inputs() -> list[str]:
    """What a record is written and read under: :func:`inputs`, and whether this process
    shares the host's kernel keyring. A record is written only where the settings turn the
    cache on, so one written under the same inputs (config files included) is one these
    settings allow; the marker keeps out a record the host wrote into a keyring it shares
    with a container, whose settings may not allow it (there the cache is off unless named)."""
    from exls_core.container import shares_host_keyring

    return [*inputs(), f"shares-host-keyring={int(shares_host_keyring())}"]


def _outside_sandbox() -> bool:
    return not os.environ.get("EXLS_SANDBOX", "").strip()  # paths.SANDBOX_ENV: no cache at all


def _readable() -> bool:
    """Not in a sandbox, and not while EXLS_AGENT_SOCKET names an agent (a session forwarded
    over SSH): whether that agent answers decides the store, which no input can tell, and the
    record is this machine's own session. Not reading is the simple rule; nothing is lost but
    a few syscalls when the forward is closed and this machine's store is used."""
    # agent_protocol.SOCKET_ENV, not imported: exls auth token asks first
    return _outside_sandbox() and not os.environ.get("EXLS_AGENT_SOCKET", "").strip()


def wanted(setting: bool | None) -> bool:
    """The setting, or where unset: on, except in a container sharing the host's keyring."""
    if setting is not None:
        return setting
    from exls_core.container import shares_host_keyring

    return not shares_host_keyring()


def _allowed_by_environment() -> bool:
    """The settings-free read (:func:`cached_record`) may look: where readable, unless
    EXLS_TOKEN_CACHE turns it off. Unset, the record decides (see :func:`record_inputs`)."""
    if not _readable():
        return False
    value = os.environ.get(CACHE_ENV)
    return value is None or value.strip().lower() in _ON  # other values: the full path decides


def _find_key() -> int | None:
    from exls_core.session import kernel_keyring as kk

    ring = kk.find_store_keyring()
    return kk.search(ring, NAME) if ring is not None else None


def cached_token(binding: str | None = None, clock: Callable[[], float] = time.time) -> str | None:
    """The cached access token when it is valid for over a minute and was written under the
    same inputs (and for binding, when given); None otherwise. Never raises."""
    record = cached_record(binding, clock)
    return record[0] if record is not None else None


def cached_record(
    binding: str | None = None, clock: Callable[[], float] = time.time
) -> tuple[str, float] | None:
    """As :func:`cached_token`, with the token's expiry (seconds since the epoch); without the
    settings, so only where the environment allows it (see :func:`_allowed_by_environment`)."""
    return _read_record(binding, clock) if _allowed_by_environment() else None


def _read_record(binding: str | None, clock: Callable[[], float]) -> tuple[str, float] | None:
    if sys.platform != "linux":
        return None
    from exls_core.session import kernel_keyring as kk

    try:
        key = _find_key()
        raw = kk.read(key) if key is not None else None
    except kk.KernelKeyringError:
        return None
    if raw is None:
        return None
    try:
        fields = raw.decode("utf-8", "surrogateescape").split(_SEP)
        expires_at = float(fields[1])
    except (ValueError, IndexError):
        return None
    valid = (
        len(fields) > _FIELDS
        and fields[0] == FORMAT
        and fields[_FIELDS:] == record_inputs()
        and (binding is None or fields[2] == binding)
        and expires_at - clock() > REFRESH_MARGIN  # also False for nan
        and bool(fields[4])
    )
    return (fields[4], expires_at) if valid else None


class TokenCache:
    """Puts and drops the record; created with the store (see selection.open_store)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def lookup(
        self, binding: str, clock: Callable[[], float] = time.time
    ) -> tuple[str, float] | None:
        """The cached token and its expiry (see :func:`cached_record`), when this cache is on:
        the settings chose it (``token_cache = true`` turns it on where it is off by default)."""
        return _read_record(binding, clock) if self.enabled and _readable() else None

    def put(
        self,
        access_token: str,
        expires_at: float,
        binding: str,
        generation: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Cache the token until its expiry; drops the old record when that fails."""
        if not self.enabled:
            return
        from exls_core.session import kernel_keyring as kk

        fields = [
            FORMAT,
            repr(float(expires_at)),
            binding,
            generation,
            access_token,
            *record_inputs(),
        ]
        seconds = int(expires_at - clock()) + 1 if expires_at == expires_at else 0
        if not (access_token.isascii() and access_token.isprintable()) or seconds <= 1:
            self.drop()  # not a token to cache; the old record must not outlive this
            return
        try:
            payload = _SEP.join(fields).encode("utf-8", "surrogateescape")
            key = kk.add(kk.store_keyring(), NAME, payload)
            kk.set_permissions(key)
            kk.set_timeout(key, min(seconds, 2**31))
        except kk.KernelKeyringError:
            self.drop()

    def put_found(self, found: HotRecord | Session, pointer: str) -> None:
        """Cache what the store holds under this pointer (its generation is the version)."""
        from exls_core.session.chunks import ChunkError, Pointer
        from exls_core.session.model import Session, binding

        try:
            generation = Pointer.decode(pointer).generation
        except ChunkError:
            return
        if isinstance(found, Session):
            bound = binding(found.issuer, found.client_id)
        else:
            bound = found.binding
        self.put(found.access_token, found.expires_at, bound, generation)

    def drop(self) -> None:
        """Remove the record, whatever wrote it (also when this process does not cache)."""
        if sys.platform != "linux":
            return
        from exls_core.session import kernel_keyring as kk

        try:
            key = _find_key()
            if key is not None:
                kk.invalidate(key)
        except kk.KernelKeyringError:
            pass  # a kernel that refuses keyring calls holds no record either


def for_settings(enabled: bool | None) -> TokenCache | None:
    """The cache for this platform: None off Linux and in a sandboxed run; on Linux one that
    at least drops."""
    if sys.platform != "linux" or not _outside_sandbox():
        return None
    return TokenCache(wanted(enabled))
