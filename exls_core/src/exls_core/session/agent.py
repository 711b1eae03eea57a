"""The exls agent: a per-user process that holds the session in its memory only.

For machines where neither a Secret Service nor the kernel keyring may hold it (containers:
seccomp refuses keyctl, there is no D-Bus), in the tradition of ssh-agent and oidc-agent.
``exls login`` starts it on demand (:mod:`exls_core.session.agent_store`); it detaches (its own
session, SIGHUP ignored, working directory ``/``) and listens on the socket of
:mod:`exls_core.session.agent_protocol`.

The session lives in a :class:`~exls_core.session.store.SessionStore` whose entries are this
process's memory (:class:`MemoryEntries`): the same layout and the same two-slot writes as
every other store. Clients get access tokens and the session's public facts, never the
refresh token: the agent renews the session itself (:func:`exls_core.session.refresh._refresh`)
and revokes it at logout. Every write happens under :attr:`Agent.writer`: a login handing over
a new session, a renewal, a logout; ten clients asking at once see one renewal. Renewals and
logouts take the session lock first (:func:`exls_core.session.locking.session_lock`), in the
order a login does (session lock, then the hand-over), so the two never wait on each other.

It makes itself non-dumpable (no ptrace, no ``/proc/PID/mem`` for other processes of the
user), keeps no token in its argv, environment or any file, and exits when it holds nothing:
after a logout, when the session can no longer be renewed, or when no login handed it a
session within START_GRACE seconds of its start.

It also serves as the token cache of a store elsewhere (a Secret Service inside a container,
where the kernel keyring is the host's): then it holds only that store's current access token
(:class:`exls_core.session.agent_store.AgentTokenCache`), and exits when the token expires or
the store drops it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import selectors
import signal
import socket
import sys
import threading
import time
from typing import Any

from exls_core.errors import ExlsError
from exls_core.session import agent_protocol as proto
from exls_core.session.keyring_calls import Keyring
from exls_core.session.model import HotRecord, Session
from exls_core.session.store import SessionStore

READ_TIMEOUT = 10.0  # a client that has not sent its request by then is dropped
MAX_CLIENTS = 64  # connections served at once; more are closed at once
START_GRACE = 120.0  # seconds an agent that was never handed a session waits for one


class MemoryEntries(Keyring):
    """Named entries in this process's memory: what SessionStore needs of a keyring."""

    def __init__(self) -> None:
        super().__init__(keyring_backend=self)
        self._entries: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> str | None:
        with self._lock:
            return self._entries.get(name)

    def set(self, name: str, value: str) -> None:
        with self._lock:
            self._entries[name] = value

    def delete(self, name: str) -> None:
        with self._lock:
            self._entries.pop(name, None)


class HeldStore(SessionStore):
    """The store inside the agent."""

    kind = "agent"

    def __init__(self) -> None:
        super().__init__(MemoryEntries())

    def backend_name(self) -> str:
        return f"exls agent (pid {os.getpid()}, in memory)"


def public_facts(session: Session, store: SessionStore) -> dict[str, Any]:
    """The session as clients may see it: everything but the refresh token and ID token;
    whether it can be renewed by the rule of the store that holds it."""
    facts: dict[str, Any] = dataclasses.asdict(session)
    facts.update(refresh_token=None, id_token=None, scopes=list(session.scopes))
    facts["refreshable"] = store.refreshable(session)
    return facts


def _failure(error: str, exc: ExlsError | None = None, message: str = "") -> dict[str, Any]:
    return {
        "ok": False,
        "error": error,
        "message": exc.message if exc else message,
        "hint": exc.hint if exc else None,
    }


class Agent:
    def __init__(self, listener: socket.socket, settings: Any) -> None:
        self.listener = listener
        self.settings = settings
        self.store: SessionStore = HeldStore()  # agent_forward serves another store
        self.writer = threading.Lock()
        self.clients = threading.BoundedSemaphore(MAX_CLIENTS)
        self.held_once = False
        self.inputs: list[str] | None = None  # what decided the settings of the login
        self.cached: dict[str, Any] | None = None  # another store's token (cache_put)
        self.stopping = threading.Event()
        self._wake_r, self._wake_w = os.pipe()

    # --- serving

    def serve(self) -> None:
        started = time.monotonic()
        with selectors.DefaultSelector() as selector:
            selector.register(self.listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self.stopping.is_set():
                wait = None if self.held_once else START_GRACE - (time.monotonic() - started)
                if self.cached is not None and self.store.load_hot() is None:
                    # Another store's token only: hold it until it expires.
                    wait = self.cached["exp"] - time.time()
                if wait is not None and wait <= 0:
                    break  # started for a login that never came, or the cached token expired
                for key, _ in selector.select(wait):
                    if key.fileobj is self.listener:
                        self._accept()
                    else:
                        os.read(self._wake_r, 512)  # woken: look at the state again

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        if not self.clients.acquire(blocking=False):
            conn.close()  # too many at once: this one tries again
            return
        threading.Thread(target=self._serve_one, args=(conn,), daemon=True).start()

    def _serve_one(self, conn: socket.socket) -> None:
        try:
            with conn:
                conn.settimeout(READ_TIMEOUT)
                if not proto.same_user(conn):
                    return  # another uid: not one byte
                try:
                    request = proto.receive(conn)
                except (proto.ProtocolError, OSError):
                    return  # malformed, oversized, slow or half-closed: dropped
                answer = self.answer(request)
                with contextlib.suppress(OSError, proto.ProtocolError):
                    conn.sendall(proto.encode(answer))
        finally:
            self.clients.release()
            with self.writer:  # a hand-over either comes first or finds the agent stopping
                if self.held_once and not self.stopping.is_set() and self._holds_nothing():
                    self.stop()

    def stop(self) -> None:
        self.stopping.set()
        self.stop_waiting()

    def stop_waiting(self) -> None:
        """Wake the serve loop (to stop, or to wait for something else)."""
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _holds_nothing(self) -> bool:
        if self.cached is not None:
            return False
        try:
            return self.store.load_hot() is None
        except ExlsError:
            return True

    # --- answers

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        version = request.get("v")
        first = proto.SINCE.get(op, 1) if isinstance(op, str) else 1
        if not (isinstance(version, int) and first <= version <= proto.VERSION):
            return _failure("version", message=f"this agent speaks versions 1 to {proto.VERSION}")
        try:
            if op == "status":
                return self._status()
            if op == "token":
                return self._token(request.get("binding"), request.get("inputs"))
            if op == "renew":
                return self._renew_rejected(request.get("binding"), request.get("rejected"))
            if op == "put":
                return self._put(request.get("session"), request.get("inputs"))
            if op == "clear":
                with self.writer:
                    self.inputs = None
                    return {"ok": True, "existed": self.store.clear()}
            if op == "logout":
                return self._logout()
            if op == "cache_put":
                return self._cache_put(request)
            if op == "cache_get":
                return self._cache_get(request.get("binding"), None)
            if op == "cache_drop":
                self.cached = None
                return {"ok": True}
        except ExlsError as exc:
            return _failure("failed", exc)
        return _failure("request", message="unknown operation")

    def _status(self) -> dict[str, Any]:
        session = self.store.load()
        facts = public_facts(session, self.store) if session is not None else None
        return {"ok": True, "pid": os.getpid(), "session": facts}

    def _token(self, binding: object, inputs: object = None) -> dict[str, Any]:
        """The token for a client whose settings give ``binding``, or (exls auth token's
        fast path) whose ``inputs`` are those of the login: then the settings are too."""
        from exls_core.session.token_cache import REFRESH_MARGIN

        found = self.store.load_hot()
        if found is None:
            return self._cache_get(binding, inputs)
        hot = found if isinstance(found, HotRecord) else HotRecord.of(found)
        if inputs is not None:
            if inputs != self.inputs or hot is None:
                return _failure("inputs", message="other settings than the login's")
            binding = hot.binding
        expiring = hot is None or hot.expires_within(REFRESH_MARGIN, time.time())
        if expiring and (hot is None or hot.binding == binding):
            session = self._renew()
            if session is None:
                return _failure("expired")
            hot = HotRecord.of(session)
            if hot is None:
                return _failure("expired")
        assert hot is not None
        return {"ok": True, "pid": os.getpid(), **hot.to_dict()}

    def _renew_rejected(self, binding: object, rejected: object) -> dict[str, Any]:
        """An API refused ``rejected``: a real refresh, unless the held token is another one
        already (another client's request renewed it); the token then as ``token`` gives it."""
        if not (isinstance(rejected, str) and rejected):
            return _failure("request", message="no refused token")
        found = self.store.load_hot()
        if found is None:
            return _failure("not_logged_in")
        hot = found if isinstance(found, HotRecord) else HotRecord.of(found)
        if hot is None or hot.binding != binding:
            return _failure("request", message="a session for other settings")
        session = self._renew(rejected)
        hot = HotRecord.of(session) if session is not None else None
        if hot is None:
            return _failure("expired")
        return {"ok": True, "pid": os.getpid(), **hot.to_dict()}

    def _renew(self, rejected: str | None = None) -> Session | None:
        """The session with a fresh access token, renewed once under the writer lock (also
        when still valid if its token is ``rejected``, which an API refused); None when it
        is gone (the refresh token expired or was revoked)."""
        from exls_core.session.locking import session_lock
        from exls_core.session.refresh import SessionExpired, _refresh
        from exls_core.session.token_cache import REFRESH_MARGIN

        with session_lock(), self.writer:
            session = self.store.load()
            if session is None:
                return None
            force = session.access_token == rejected
            if not force and not session.expires_within(REFRESH_MARGIN, time.time()):
                return session  # another client's request renewed it meanwhile
            settings = dataclasses.replace(
                self.settings, issuer=session.issuer, client_id=session.client_id
            )
            try:
                return _refresh(settings, self.store, session, time.time, force=force)
            except SessionExpired:
                self.store.clear()
                return None

    def _cache_put(self, request: dict[str, Any]) -> dict[str, Any]:
        record = {key: request.get(key) for key in ("at", "exp", "for", "gen", "inputs")}
        texts = [i for i in record["inputs"] if isinstance(i, str)] if record["inputs"] else []
        try:
            HotRecord.from_dict(record)
        except ValueError:
            return _failure("request", message="not a token")
        if not (isinstance(record["gen"], str) and texts and texts == record["inputs"]):
            return _failure("request", message="not a token")
        with self.writer:
            if self.stopping.is_set():
                return _failure("stopping", message="this agent is stopping")
            self.cached = record
            self.held_once = True
        self.stop_waiting()  # the serve loop waits until this token expires
        return {"ok": True, "pid": os.getpid()}

    def _cache_get(self, binding: object, inputs: object) -> dict[str, Any]:
        """The cached token for these settings (``binding``, or the fast path's ``inputs``)
        while it is valid for over a minute."""
        from exls_core.session.token_cache import REFRESH_MARGIN

        record = self.cached
        if record is None:
            return _failure("not_logged_in")
        matches = record["inputs"] == inputs if inputs is not None else record["for"] == binding
        if not matches or record["exp"] - time.time() <= REFRESH_MARGIN:
            return _failure("miss", message="no cached token for these settings")
        return {"ok": True, "pid": os.getpid(), **record, "inputs": None}

    def _put(self, text: object, inputs: object) -> dict[str, Any]:
        try:
            session = Session.from_json(text if isinstance(text, str) else "")
        except ValueError:
            return _failure("request", message="not a session")
        texts = [i for i in inputs if isinstance(i, str)] if isinstance(inputs, list) else []
        with self.writer:
            if self.stopping.is_set():
                return _failure("stopping", message="this agent is stopping")
            self.store.save(session)
            self.inputs = texts if texts and texts == inputs else None
            self.held_once = True
        return {"ok": True, "pid": os.getpid()}

    def _logout(self) -> dict[str, Any]:
        from exls_core.session.locking import session_lock
        from exls_core.session.revoke import _revoke

        with session_lock(), self.writer:
            session = self.store.load()
            problem = _revoke(self.settings, session) if session is not None else None
            self.inputs = None
            existed = self.store.clear()
        return {"ok": True, "existed": existed, "problem": problem}


# --- the process


NAME = b"exls-agent"  # what ps, top and pgrep show (the comm field, /proc/PID/comm)


def _no_dump() -> None:
    """prctl(PR_SET_DUMPABLE, 0): no ptrace, no /proc/PID/mem, no core file; and the name
    (PR_SET_NAME). Linux only: macOS has no prctl."""
    if sys.platform != "linux":
        return
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE
    prctl(15, ctypes.c_char_p(NAME), 0, 0, 0)  # PR_SET_NAME


@contextlib.contextmanager
def _start_lock(path: str) -> Any:
    """One agent starting at a time for this socket (a lock file beside it)."""
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def bind(path: str) -> socket.socket | None:
    """The listening socket at ``path``; None when a live agent already answers there.
    A socket left by a dead agent is replaced (under the start lock, so never a live one)."""
    proto.check_dir(os.path.dirname(path), create=True)
    with _start_lock(path):
        if proto.check_socket(path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
                return None
            except ConnectionRefusedError:
                os.unlink(path)  # stale: checked above to be our own socket, not a symlink
            finally:
                probe.close()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        os.chmod(path, 0o600)
        listener.listen(MAX_CLIENTS)
        return listener


def _settings() -> Any:
    from exls_core.config import Settings, load_settings

    try:
        return load_settings()
    except ExlsError:
        return Settings()  # renewals use the session's own issuer and client anyway


def main(argv: list[str], make: type[Agent] = Agent) -> int:
    """``python -m exls_core.session.agent SOCKET``: bind, detach, print ``ready PID``, serve
    (the agent ``make`` builds: :mod:`exls_core.session.agent_forward` passes its own).

    Prints ``running PID``-less ``running`` when another agent already answers there, and
    ``error: ...`` when it cannot start."""
    os.umask(0o077)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl+C in the shell that started it
    _no_dump()
    path = argv[1]
    try:
        listener = bind(path)
    except (ExlsError, OSError) as exc:
        print(f"error: {getattr(exc, 'message', None) or exc}", flush=True)
        return 1
    if listener is None:
        print("running", flush=True)
        return 0
    if os.fork() != 0:
        os._exit(0)  # the starter waits for this parent; the child serves on
    _no_dump()
    bound = os.stat(path)
    agent = make(listener, _settings())
    print(f"ready {os.getpid()}", flush=True)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    try:
        agent.serve()
    finally:
        # Under the start lock, so that a starting agent never finds this one half gone:
        # clients connected meanwhile see the connection closed (AgentStopping) and start anew.
        with _start_lock(path):
            with contextlib.suppress(OSError):
                now = os.lstat(path)
                if (now.st_dev, now.st_ino) == (bound.st_dev, bound.st_ino):
                    os.unlink(path)  # ours still: a later agent's socket stays
            listener.close()
    os._exit(0)  # daemon threads may still write an answer: they end with the process


if __name__ == "__main__":
    sys.exit(main(sys.argv))
