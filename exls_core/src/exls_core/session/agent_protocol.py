"""The exls agent's socket and protocol, shared by the agent and its clients.

Where: ``EXLS_AGENT_SOCKET`` when set (as ``SSH_AUTH_SOCK``: a socket mounted from elsewhere),
else ``agent.sock`` in ``$XDG_RUNTIME_DIR/exalsius/``, else in ``exls-<uid>`` under the temp
directory: a fixed place per user, so a new shell (a new ``docker exec``) finds the agent
without any variable. The directory is created 0700; one that is a symlink, belongs to
another user or lets others in is refused with one line naming it, and so is a socket path
that is a symlink or not this user's socket. A sandboxed run (``EXLS_SANDBOX``) never asks
the real agent: its directory is inside the test home, and ``EXLS_AGENT_SOCKET`` is ignored.

What: one request per connection, one answer. Each message is a 4-byte big-endian length and
that many bytes of a JSON object, at most 64 KiB; a request carries ``"v"`` and ``"op"``.
Version 2 adds ``renew`` (a token the API refused, to be replaced by a real refresh); a
request carries the first version that has its operation (:data:`SINCE`), so an agent of
version 1 still serves the others and refuses only that one.
Every connection is checked with the peer's credentials (SO_PEERCRED on Linux, getpeereid on
macOS): only this uid is served.

Standard library only, and cheap to import: ``exls auth token`` talks to the agent.
"""

from __future__ import annotations

# The C modules under json and socket: `exls auth token` talks to the agent, and the packages
# would cost it imports of re and selectors and the building of socket's enums.
import _json
import _socket as socket
import math
import os
import stat
import struct
import sys

from exls_core.errors import ExlsError

TYPE_CHECKING = False  # as typing's (mypy reads it so); importing typing costs auth token

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

VERSION = 2  # this agent speaks versions 1 to VERSION
SINCE = {"renew": 2}  # operations newer than version 1, and the version that brought them
MAX_MESSAGE = 64 * 1024
SOCKET_ENV = "EXLS_AGENT_SOCKET"
SOCKET_NAME = "agent.sock"
REPLY_TIMEOUT = 60.0  # a renewal is an HTTP exchange or two; only a hang guard
_HEADER = struct.Struct(">I")


class ProtocolError(Exception):
    """A message that breaks the protocol (too long, not JSON, cut short, too slow)."""


class UnsafeSocketPath(ExlsError):
    """The agent's directory or socket is not private to this user."""


class CutShort(ProtocolError):
    """The other end closed before the message was complete."""


class AgentStopping(ExlsError):
    """The agent closed the connection without an answer: it is stopping (it holds nothing)."""


class AgentGone(ExlsError):
    """A socket is there, but no agent answers it: the session it held is gone."""

    def __init__(self, path: str) -> None:
        if os.environ.get(SOCKET_ENV, "").strip():  # named: maybe a forward over SSH
            super().__init__(forward_gone(path))
            return
        super().__init__(
            "Your session was held in memory by the exls agent, which is gone (the container "
            f"restarted, or the agent was stopped or killed; its socket {path} is left).",
            hint='Run "exls login" to log in again.',
        )


def forward_gone(path: str) -> str:
    """One line for an agent named by EXLS_AGENT_SOCKET that does not answer."""
    return (
        f"No session at the exls agent {path} ({SOCKET_ENV}): the connection forwarding it "
        "is closed, or the session there ended; reconnect with the forward, or unset "
        f'{SOCKET_ENV} and run "exls login".'
    )


# --- where


def _temp_dir() -> str:
    """The temporary directory as tempfile would choose it (TMPDIR, TEMP, TMP, /tmp, ...),
    without importing tempfile (``exls auth token`` asks) and without writing a probe file."""
    for name in ("TMPDIR", "TEMP", "TMP"):
        value = os.environ.get(name)
        if value and os.path.isdir(value) and os.access(value, os.W_OK | os.X_OK):
            return os.path.abspath(value)
    for candidate in ("/tmp", "/var/tmp", "/usr/tmp"):  # noqa: S108 (tempfile's own list)
        if os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK):
            return candidate
    return os.getcwd()


def default_dir() -> str:
    """The agent's directory; in a sandboxed run, inside the test home (never the real one)."""
    from exls_core.paths import runtime_dir, sandbox_dir

    sandbox = sandbox_dir()
    if sandbox is not None:
        return os.path.join(sandbox, "agent")
    runtime = runtime_dir()
    if runtime is not None:
        return runtime
    return os.path.join(_temp_dir(), f"exls-{os.getuid()}")


def socket_path() -> str:
    """The agent's socket path (not checked; see :func:`checked_socket_path`). A sandboxed
    run ignores EXLS_AGENT_SOCKET: a forwarded session is a real one."""
    explicit = os.environ.get(SOCKET_ENV, "").strip()
    if explicit and not os.environ.get("EXLS_SANDBOX", "").strip():
        return os.path.abspath(os.path.expanduser(explicit))
    return os.path.join(default_dir(), SOCKET_NAME)


def _refuse(path: str, why: str) -> UnsafeSocketPath:
    return UnsafeSocketPath(
        f"Refusing the exls agent's {path}: {why}.",
        hint=f"Remove it, or name another socket with {SOCKET_ENV}.",
    )


def _check_own(path: str, info: os.stat_result, is_kind: Callable[[int], bool], kind: str) -> None:
    """Not a symlink, the right kind of file, and this user's (lstat's ``info``)."""
    if stat.S_ISLNK(info.st_mode):
        raise _refuse(path, "it is a symlink")
    if not is_kind(info.st_mode):
        raise _refuse(path, f"it is not a {kind}")
    if info.st_uid != os.getuid():
        raise _refuse(path, f"it belongs to another user (uid {info.st_uid})")


def check_dir(path: str, *, create: bool) -> None:
    """``path`` is a real directory of this user that nobody else may enter (created 0700
    when missing and ``create``); UnsafeSocketPath naming it otherwise."""
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise ExlsError(
                f"Cannot create the exls agent's directory {path}: {exc.strerror or exc}."
            ) from None
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise ExlsError(f"Cannot use the exls agent's directory {path}: {exc.strerror}.") from None
    _check_own(path, info, stat.S_ISDIR, "directory")
    if info.st_mode & 0o077:
        raise _refuse(path, f"others can access it (mode {info.st_mode & 0o777:o})")


def check_socket(path: str) -> bool:
    """True when ``path`` is this user's socket, False when nothing is there;
    UnsafeSocketPath when it is anything else (a symlink, a file, another user's)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise ExlsError(f"Cannot use the exls agent's socket {path}: {exc.strerror}.") from None
    _check_own(path, info, stat.S_ISSOCK, "socket")
    return True


def checked_socket_path(*, create: bool = False, path: str | None = None) -> tuple[str, bool]:
    """The socket path (``path``, else :func:`socket_path`) after the checks above, and
    whether a socket is there."""
    path = path or socket_path()
    directory = os.path.dirname(path)
    if not create and not os.path.lexists(directory):
        return path, False  # no agent has ever run here
    check_dir(directory, create=create)
    return path, check_socket(path)


# --- who


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket."""
    if sys.platform == "linux":
        ucred = struct.Struct("3i")  # pid, uid, gid
        raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, ucred.size)
        return int(ucred.unpack(raw)[1])
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = ctypes.c_uint32(), ctypes.c_uint32()
    if libc.getpeereid(conn.fileno(), ctypes.byref(uid), ctypes.byref(gid)) != 0:
        raise OSError(ctypes.get_errno(), "getpeereid")
    return int(uid.value)


def same_user(conn: socket.socket) -> bool:
    """Only this uid is served; a peer whose credentials cannot be read is not."""
    try:
        return peer_uid(conn) == os.getuid()
    except OSError:
        return False


# --- what


# JSON through the C functions under the json package: the same text as
# json.dumps(separators=(",", ":"), ensure_ascii=True) and the same values as json.loads.


def _dumps(value: object) -> str:
    if isinstance(value, str):
        return str(_json.encode_basestring_ascii(value))
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ProtocolError("not a finite number")
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_dumps(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_dumps(str(k))}:{_dumps(v)}" for k, v in value.items()) + "}"
    raise ProtocolError(f"cannot send a {type(value).__name__}")


class _Decoding:
    """What the C scanner reads from json.JSONDecoder: strict, plain dicts, no NaN."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        raise ValueError(f"{name} is not JSON")


def _loads(data: bytes) -> object:
    """ValueError when data is not one JSON value (RecursionError when nested too deep)."""
    text = data.decode("utf-8")
    try:
        value, end = _json.make_scanner(_Decoding())(text, 0)  # type: ignore[arg-type]
    except StopIteration:
        raise ValueError("not JSON") from None
    if end != len(text):
        raise ValueError("extra data")
    return value


def encode(message: dict[str, Any]) -> bytes:
    body = _dumps(message).encode("ascii")
    if len(body) > MAX_MESSAGE:
        raise ProtocolError(f"message of {len(body)} bytes, over {MAX_MESSAGE}")
    return _HEADER.pack(len(body)) + body


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    while size:
        try:
            chunk = conn.recv(min(size, 65536))
        except TimeoutError:
            raise ProtocolError("too slow") from None
        if not chunk:
            raise CutShort("cut short")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def receive(conn: socket.socket) -> dict[str, Any]:
    """One message; ProtocolError when it is not one (the socket's timeout bounds each read)."""
    (size,) = _HEADER.unpack(_read_exactly(conn, _HEADER.size))
    if size > MAX_MESSAGE:
        raise ProtocolError(f"message of {size} bytes, over {MAX_MESSAGE}")
    try:
        message = _loads(_read_exactly(conn, size))
    except (ValueError, RecursionError):
        raise ProtocolError("not JSON") from None
    if not isinstance(message, dict):
        raise ProtocolError("not a JSON object")
    return message


def fast_record() -> tuple[str, float] | None:
    """``exls auth token`` without the settings: the agent's token and its expiry (seconds
    since the epoch) when it holds a session
    stored under the same inputs (see :func:`exls_core.session.token_cache.inputs`: the
    environment and config files that decide the settings). None on any doubt or failure;
    the full path then decides (and reports a gone agent)."""
    if sys.platform == "win32" or os.environ.get("EXLS_SANDBOX", "").strip():
        return None  # paths.SANDBOX_ENV: a sandbox's session is its own kernel keys only
    try:
        path, present = checked_socket_path()
        if not present:
            return None
        from exls_core.session.token_cache import inputs

        answer = call(path, {"op": "token", "inputs": inputs()})
    except (ExlsError, OSError):
        return None
    token, expires_at = answer.get("at"), answer.get("exp")
    if not (answer.get("ok") and isinstance(token, str) and token):
        return None
    if not isinstance(expires_at, (int, float)) or isinstance(expires_at, bool):
        return None
    return token, float(expires_at)


def answers(path: str) -> bool:
    """An agent answers at ``path`` (checked as :func:`checked_socket_path` checks it): it
    replies to a status request. A connection alone proves nothing: sshd accepts on a
    forwarded socket before it asks the other machine for a channel, and closes it when the
    agent there is gone."""
    try:
        if not checked_socket_path(path=path)[1]:
            return False
        call(path, {"op": "status"})
    except (ExlsError, OSError):  # AgentGone and AgentStopping are ExlsErrors
        return False
    return True


def call(path: str, request: dict[str, Any], timeout: float = REPLY_TIMEOUT) -> dict[str, Any]:
    """Send one request to the agent at ``path`` and return its answer.

    AgentGone when a socket is there but nothing answers; AgentStopping when the agent closed
    without an answer; ConnectionError (FileNotFoundError) when there is no socket; ExlsError
    when the answer breaks the protocol."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.settimeout(timeout)
        try:
            conn.connect(path)
        except ConnectionRefusedError:
            raise AgentGone(path) from None
        if not same_user(conn):  # a socket mounted from elsewhere: serve only our own agent
            raise ExlsError(f"Refusing the exls agent at {path}: it runs as another user.")
        try:
            conn.sendall(encode({"v": SINCE.get(str(request.get("op")), 1), **request}))
            return receive(conn)
        except (CutShort, ConnectionResetError, BrokenPipeError):
            raise AgentStopping(f"The exls agent at {path} stopped.") from None
        except ProtocolError as exc:
            raise ExlsError(f"The exls agent at {path} gave no usable answer ({exc}).") from None
    finally:
        conn.close()
