"""The forwarding agent: this machine's session served to other machines over ``ssh -R``.

``exls auth agent`` starts it (:func:`ensure_forwarding_agent`) and prints its socket, so that
``ssh -R /run/user/1000/exls.sock:"$(exls auth agent)" gpu-box`` forwards it, and a server
with ``EXLS_AGENT_SOCKET`` naming the forwarded socket uses it as its session store
(:class:`~exls_core.session.agent_store.AgentSessionStore`).

It is the exls agent (:mod:`exls_core.session.agent`: the same socket checks, protocol, peer
check and hand-out rules) in front of the store this machine uses (the keyring, the kernel
keyring or the in-memory agent), instead of a session of its own: clients get access tokens
and public facts, never the refresh token; renewals happen here, in that store, under the
session lock, as any exls process on this machine renews. It refuses what would let the other
machine change this one's session (a login handing it a session, a clear, a token to cache),
and a logout unless the client asks with ``exls logout --forwarded``. It reports who and where
it runs (``origin``), and exits when the store holds no session any more (a logout here).
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import os
import socket
import sys
import threading
import time
from typing import Any

from exls_core.errors import ExlsError
from exls_core.session import agent_protocol as proto
from exls_core.session.agent import Agent, main
from exls_core.session.model import Session

SOCKET_NAME = "forward.sock"  # beside agent.sock: never the in-memory agent's own socket


def forward_socket_path() -> str:
    return os.path.join(proto.default_dir(), SOCKET_NAME)


def origin() -> dict[str, str]:
    """Who and where, as the other machine shows it (``exls auth status``)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {"user": user, "host": socket.gethostname()}


def _refused(what: str) -> dict[str, Any]:
    who = origin()
    return {
        "ok": False,
        "error": "forwarded",
        "message": f"The session is {who['user']}@{who['host']}'s, forwarded by its exls agent: "
        f"{what}.",
        "hint": f"Unset {proto.SOCKET_ENV} to use a session of this machine instead.",
    }


class ForwardingAgent(Agent):
    """The exls agent serving the session of this machine's store (see the module)."""

    def __init__(self, listener: socket.socket, settings: Any) -> None:
        super().__init__(listener, settings)
        from exls_core.session.selection import open_store

        if proto.socket_path() == listener.getsockname():
            del os.environ[proto.SOCKET_ENV]  # named itself: it must not serve itself

        self.store = open_store(settings)  # this machine's store, as exls uses it here
        # Read once here, in the main thread: the kernel store's process keyring is then in
        # the credentials every serving thread starts with (one that a serving thread made
        # would be its own, and the next thread could not search the keys: EACCES).
        with contextlib.suppress(ExlsError):
            self.store.load()
        self.held_once = True  # it serves a session that exists (exls auth agent checked)
        self.serial = threading.Lock()  # one store access at a time (a keyring over D-Bus)
        self.saw_nothing = False  # an answer found no session: look again before serving on

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op not in ("status", "token", "renew", "logout"):  # put, clear, cache_*: not from there
            return _refused("it cannot be changed from another machine")
        if op == "logout" and request.get("end_forwarded") is not True:
            return _refused('ending it there takes "exls logout --forwarded"')
        if op == "token" and request.get("inputs") is not None:
            # exls auth token's fast path: the other machine's settings are not this one's.
            return {"ok": False, "error": "inputs", "message": "a forwarded session"}
        with self.serial:
            answer = super().answer(request)
        if op == "status" and answer.get("ok"):
            answer["origin"] = origin()
        nothing = op == "status" and answer.get("ok") and answer.get("session") is None
        if nothing or op == "logout" or answer.get("error") in ("not_logged_in", "expired"):
            self.saw_nothing = True
        return answer

    def _holds_nothing(self) -> bool:
        """Asks the store only after an answer found no session (a read of the keyring for
        every connection would cost every client)."""
        if not self.saw_nothing:
            return False
        with self.serial:
            self.saw_nothing = False
            return super()._holds_nothing()

    def _renew(self, rejected: str | None = None) -> Session | None:
        """Renewed as any exls process here renews it (the store's way, its locks); a token
        an API refused (``rejected``) as :func:`~exls_core.session.refresh.renew_access_token`
        renews it here: a real refresh unless another process replaced it already."""
        from exls_core.session.refresh import (
            SessionExpired,
            _refresh_locked,
            current_session,
        )

        session = self.store.load()
        if session is None:
            return None
        settings = dataclasses.replace(
            self.settings, issuer=session.issuer, client_id=session.client_id
        )
        try:
            if rejected is not None:
                return _refresh_locked(settings, self.store, time.time, rejected, rejected=True)
            return current_session(settings, store=self.store, clock=time.time)
        except SessionExpired:
            return None

    def _logout(self) -> dict[str, Any]:
        from exls_core.session.revoke import logout

        result = logout(self.settings, store=self.store)
        return {"ok": True, "existed": result.was_logged_in, "problem": result.revocation_problem}


def ensure_forwarding_agent() -> str:
    """The socket of an agent serving this machine's session (started when none runs)."""
    from exls_core.session.agent_store import start_agent

    path = forward_socket_path()
    proto.checked_socket_path(create=True, path=path)
    start_agent(path, module=__name__)
    return path


def stop_when_idle() -> None:
    """After a logout here: a forwarding agent asked anything sees no session and exits."""
    path = forward_socket_path()
    try:
        if proto.checked_socket_path(path=path)[1]:
            proto.call(path, {"op": "status"})
    except (ExlsError, OSError):
        pass  # none runs, or it is gone already


if __name__ == "__main__":
    sys.exit(main(sys.argv, ForwardingAgent))
