"""The session held by the exls agent (:mod:`exls_core.session.agent`), as a store.

The agent keeps the session in a :class:`~exls_core.session.store.SessionStore` over its own
memory; this class is the same store seen from another process, through the agent's socket:
``load`` gets the public facts (no refresh token), ``load_hot`` a valid access token (the agent
renews it first when it expires within a minute), ``save`` hands the agent a new session
(starting the agent when none runs), ``clear`` empties it. Renewal and revocation happen in
the agent: :attr:`holds_refresh_token` is False, so refresh and logout ask the store to do them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from exls_core.errors import ExlsError
from exls_core.session import agent_protocol as proto
from exls_core.session.model import SESSION_FORMAT, HotRecord, Session, binding
from exls_core.session.store import SessionStore, StoreError
from exls_core.session.token_cache import REFRESH_MARGIN, TokenCache, inputs

if TYPE_CHECKING:
    from collections.abc import Callable

    from exls_core.config import Settings

START_TIMEOUT = 60.0  # a hang guard for the agent's start (it binds and answers in milliseconds)
NOTE = (
    "Your session is held in memory by the exls agent (pid {pid}, socket {path}): nothing is "
    "written to disk, later shells of this user find it, and it is gone when the container "
    "or machine stops."
)


def start_agent(path: str, module: str = "exls_core.session.agent") -> None:
    """Start the agent for ``path`` and wait until it listens (or another one already does)."""
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", module, path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd="/",
            start_new_session=True,  # its own session: no terminal, no SIGHUP from the shell
        )
    except OSError as exc:
        raise StoreError(f"Failed to store token: cannot start the exls agent ({exc}).") from None
    assert process.stdout is not None
    with process.stdout:
        line = process.stdout.readline().decode("utf-8", "replace").strip()
    process.wait(START_TIMEOUT)
    if line.startswith("ready") or line == "running":
        return
    reason = line.removeprefix("error: ") or f"it exited with status {process.returncode}"
    raise StoreError(f"Failed to store token: the exls agent could not start: {reason}")


class AgentSessionStore(SessionStore):
    kind = "agent"
    holds_refresh_token = False
    label = "agent"

    def __init__(self, settings: Settings, cache: TokenCache | None = None) -> None:
        super().__init__(cache=cache)
        self.settings = settings
        self.pid: int | None = None
        self._refreshable = False  # as the agent said in its last status answer
        self.path = proto.socket_path()
        # A forwarding agent's user and host (agent_forward.origin), from its status answer.
        self.origin: dict[str, str] | None = None
        self.end_forwarded = False  # exls logout --forwarded: end a forwarded session too

    # --- talking to the agent

    def _call(
        self, request: dict[str, Any], *, verb: str, gone_ok: bool = False
    ) -> dict[str, Any] | None:
        """The agent's answer; None when no agent runs (no socket, or with gone_ok a socket
        that nothing answers: a new agent replaces it)."""
        try:
            path, present = proto.checked_socket_path()
            if not present:
                return None
            answer = proto.call(path, request)
        except (FileNotFoundError, proto.AgentStopping):
            return None  # it stopped (holding nothing) between the check and the answer
        except proto.AgentGone as exc:
            if gone_ok:
                return None
            raise StoreError(exc.message, hint=exc.hint) from None
        except ExlsError as exc:
            raise StoreError(f"Failed to {verb} token: {exc.message}", hint=exc.hint) from None
        except OSError as exc:
            raise StoreError(
                f"Failed to {verb} token: the exls agent at {self.path} failed "
                f"({exc.strerror or exc})."
            ) from None
        if answer.get("error") == "stopping":
            return None  # it holds nothing and is on its way out: as if none ran
        if isinstance(answer.get("pid"), int):
            self.pid = answer["pid"]
        return answer

    def _failed(self, answer: dict[str, Any], verb: str) -> StoreError:
        message = str(answer.get("message") or answer.get("error") or "no reason given")
        hint = answer.get("hint")
        return StoreError(
            f"Failed to {verb} token: {message}", hint=hint if isinstance(hint, str) else None
        )

    # --- what the store does

    def forwarded_from(self) -> str | None:
        """``user@host`` of the machine whose session a forwarding agent serves (after load)."""
        if not self.origin:
            return None
        return f"{self.origin.get('user', '?')}@{self.origin.get('host', '?')}"

    def backend_name(self) -> str:
        where = f"socket {self.path}"
        if self.forwarded_from():
            pid = f"pid {self.pid} there, " if self.pid else ""
            return f"forwarded from {self.forwarded_from()} by its exls agent ({pid}{where})"
        return f"exls agent (pid {self.pid}, {where}, in memory)" if self.pid else where

    def is_plaintext(self) -> bool:
        return False

    def login_note(self) -> str | None:
        return NOTE.format(pid=self.pid, path=self.path)

    def facts(self) -> dict[str, Any]:
        return {
            "agent_pid": self.pid,
            "agent_socket": self.path,
            "forwarded_from": self.forwarded_from(),
        }

    def refreshable(self, session: Session) -> bool:
        return self._refreshable

    def check_usable(self) -> None:
        """Before a login: the socket's directory is private (created if need be), and the
        agent there does not serve another machine's session (agent_forward)."""
        try:
            proto.checked_socket_path(create=True)
        except ExlsError as exc:
            raise StoreError(f"Failed to store token: {exc.message}", hint=exc.hint) from None
        answer = self._call({"op": "status"}, verb="store", gone_ok=True)
        origin = answer.get("origin") if answer else None
        if isinstance(origin, dict):
            self.origin = origin
            raise StoreError(
                f"Failed to store token: the exls agent at {self.path} serves the session of "
                f"{self.forwarded_from()}, forwarded from there; a login here cannot replace it.",
                hint=f"Unset {proto.SOCKET_ENV} to log in on this machine, in its own store.",
            )

    def load(self) -> Session | None:
        answer = self._call({"op": "status"}, verb="load")
        if answer is None:
            return None
        if not answer.get("ok"):
            raise self._failed(answer, "load")
        origin = answer.get("origin")
        self.origin = origin if isinstance(origin, dict) else None
        facts = answer.get("session")
        if facts is None:
            return None
        try:
            self._refreshable = bool(facts.get("refreshable"))
            return Session.from_json(json.dumps({"format": SESSION_FORMAT, **facts}))
        except (ValueError, AttributeError, TypeError):
            raise StoreError("Failed to load token: the exls agent sent no session") from None

    def load_hot(self) -> HotRecord | Session | None:
        request = {"op": "token", "binding": binding(self.settings.issuer, self.settings.client_id)}
        return self._hot(self._call(request, verb="load"))

    def _hot(self, answer: dict[str, Any] | None) -> HotRecord | None:
        """The token of a ``token`` or ``renew`` answer; the agent's failures as errors."""
        if answer is None:
            return None
        if answer.get("ok"):
            try:
                return HotRecord.from_dict(answer)
            except ValueError:
                raise StoreError("Failed to load token: the exls agent sent no token") from None
        if answer.get("error") == "not_logged_in":
            return None
        if answer.get("error") == "expired":
            from exls_core.session.refresh import SessionExpired

            raise SessionExpired()
        if answer.get("error") == "failed":  # the agent's renewal failed: its own words
            hint = answer.get("hint")
            raise ExlsError(
                str(answer.get("message") or "The exls agent could not renew the session."),
                hint=hint if isinstance(hint, str) else None,
            )
        raise self._failed(answer, "load")

    def remember_token(self, found: HotRecord | Session) -> None:
        pass  # the agent is the cache

    def renewed(self, settings: Settings, rejected: str | None = None) -> Session:
        """The agent renews the session (``load_hot`` asks it to, near expiry; ``renew``
        when an API refused the token ``rejected``); then its public facts."""
        if rejected is None:
            self.load_hot()
        else:
            self._renew(rejected)
        session = self.load()
        if session is None:
            from exls_core.session.refresh import NotLoggedIn

            raise NotLoggedIn()
        return session

    def _renew(self, rejected: str) -> None:
        request = {
            "op": "renew",
            "binding": binding(self.settings.issuer, self.settings.client_id),
            "rejected": rejected,
        }
        answer = self._call(request, verb="renew")
        if answer is not None and answer.get("error") == "version":  # an agent from before
            raise StoreError(
                f"The exls agent at {self.path} is older than this exls and cannot renew a "
                "token the API refused.",
                hint="Update exls where that agent runs and start it again (a login there, "
                'or "exls auth agent" for a forwarded one).',
            )
        self._hot(answer)  # no agent, or no session: renewed() finds none

    def save(self, session: Session) -> None:
        if self.cache is not None:
            self.cache.drop()  # a record from another store must not outlive this login
        self.check_usable()
        request = {"op": "put", "session": session.to_json(), "inputs": inputs()}
        answer = self._call(request, verb="store", gone_ok=True)
        if answer is None:
            start_agent(self.path)
            answer = self._call(request, verb="store")
        if answer is None or not answer.get("ok"):
            raise self._failed(answer or {"message": "the agent stopped"}, "store")

    def clear(self) -> bool:
        if self.cache is not None:
            self.cache.drop()
        answer = self._call({"op": "clear"}, verb="remove")
        return bool(answer and answer.get("existed"))

    def end(self, settings: Settings) -> tuple[bool, str | None]:
        """Logout in the agent: it revokes the tokens, forgets them and exits."""
        if self.cache is not None:
            self.cache.drop()
        request = {"op": "logout", "end_forwarded": self.end_forwarded}
        answer = self._call(request, verb="remove")
        if answer is None:
            return False, None
        if not answer.get("ok"):
            raise self._failed(answer, "remove")
        problem = answer.get("problem")
        return bool(answer.get("existed")), problem if isinstance(problem, str) else None


class AgentTokenCache(TokenCache):
    """The token cache of a store elsewhere, kept by the exls agent instead of the kernel
    keyring: for a Secret Service inside a container that shares the host's user namespace
    (where the kernel keyring is the host user's). The agent holds only the access token,
    and ``exls auth token`` gets it in one request (agent_protocol.fast_record)."""

    def _request(self, request: dict[str, Any], *, start: bool = False) -> dict[str, Any] | None:
        try:
            path, present = proto.checked_socket_path(create=start)
            answer = proto.call(path, request) if present else None
            if answer is not None and answer.get("error") != "stopping":
                return answer
        except (proto.AgentGone, proto.AgentStopping):
            if not start:
                return None
        except (ExlsError, OSError):
            return None  # a cache: any failure is a miss
        if not start:
            return None
        try:
            start_agent(path)
            return proto.call(path, request)
        except (ExlsError, OSError):
            return None

    def lookup(
        self, binding: str, clock: Callable[[], float] = time.time
    ) -> tuple[str, float] | None:
        if not self.enabled:
            return None
        answer = self._request({"op": "cache_get", "binding": binding})
        if not answer or not answer.get("ok"):
            return None
        token, expires_at = answer.get("at"), answer.get("exp")
        if not (isinstance(token, str) and token and isinstance(expires_at, (int, float))):
            return None
        return token, float(expires_at)

    def put(
        self,
        access_token: str,
        expires_at: float,
        binding: str,
        generation: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not self.enabled:
            return
        if not expires_at - clock() > REFRESH_MARGIN:
            self.drop()  # not worth an agent; the old record must not outlive this
            return
        record = {"at": access_token, "exp": expires_at, "for": binding, "gen": generation}
        if self._request({"op": "cache_put", **record, "inputs": inputs()}, start=True) is None:
            self.drop()

    def drop(self) -> None:
        self._request({"op": "cache_drop"})
