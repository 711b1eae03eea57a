"""Who is at the other end of a loopback connection: the uid that owns the client's socket.

On Linux any local user can read every process's command line (``/proc/PID/cmdline``), so
the URL a browser is started with is no secret there. The browser is therefore handed an
address of the loopback listener instead, which redirects to the authorization URL only for
a client of this user (or root, who can read everything anyway). The kernel's socket table
(``/proc/net/tcp``, of this network namespace) says which uid owns the connecting socket.
"""

from __future__ import annotations

import os
import socket
import sys

PROC_NET_TCP = "/proc/net/tcp"  # IPv4: the listener binds 127.0.0.1 only


def can_identify(table: str = PROC_NET_TCP) -> bool:
    """Whether this system says who owns a loopback connection (Linux)."""
    return sys.platform.startswith("linux") and os.access(table, os.R_OK)


def peer_uid(sock: socket.socket, table: str = PROC_NET_TCP) -> int | None:
    """The uid owning the other end of ``sock``, a loopback TCP connection; None when the
    table cannot be read or has no such socket: then the client is no process of this network
    namespace (a relay from outside it, such as WSL's localhost forwarding)."""
    try:
        client = _address(*sock.getpeername()[:2])
        server = _address(*sock.getsockname()[:2])
        with open(table, encoding="ascii") as entries:
            rows = entries.read().splitlines()[1:]
    except (OSError, ValueError):
        return None
    for row in rows:
        fields = row.split()
        # sl local_address rem_address st tx:rx tr:when retrnsmt uid ...: the client's socket
        if len(fields) > 7 and (fields[1], fields[2]) == (client, server):
            try:
                return int(fields[7])
            except ValueError:
                return None
    return None


def _address(host: str, port: int) -> str:
    """``127.0.0.1``, 8999 as the table writes it: ``0100007F:2327`` (the address as the
    machine's own integer, in hex)."""
    number = int.from_bytes(socket.inet_aton(host), sys.byteorder)
    return f"{number:08X}:{port:04X}"


def is_this_user(uid: int | None) -> bool:
    """A client of this user or root; also one the table does not know (see peer_uid)."""
    return uid is None or uid in (os.getuid(), 0)
