"""Who is at the other end of a loopback connection: the uid that owns the client's socket.

On Linux any local user can read every process's command line (``/proc/PID/cmdline``), so
the URL a browser is started with is no secret there. The browser is therefore handed an
address of the loopback listener instead, which redirects to the authorization URL only for
a client of this user (or root, who can read everything anyway). The kernel's socket tables
(``/proc/net/tcp`` and ``/proc/net/tcp6``, of this network namespace) say which uid owns the
connecting socket: an IPv6 socket connected to ``::ffff:127.0.0.1`` reaches the IPv4
listener but is listed only in ``tcp6``, under its v4-mapped address.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys

PROC_NET_TCP = "/proc/net/tcp"
PROC_NET_TCP6 = "/proc/net/tcp6"  # absent where the kernel has no IPv6: then nobody uses it
TABLES = (PROC_NET_TCP, PROC_NET_TCP6)


def can_identify(table: str = PROC_NET_TCP) -> bool:
    """Whether this system says who owns a loopback connection (Linux)."""
    return sys.platform.startswith("linux") and os.access(table, os.R_OK)


def peer_uid(sock: socket.socket, tables: tuple[str, ...] = TABLES) -> int | None:
    """The uid owning the other end of ``sock``, a loopback TCP connection, from the socket
    tables; None when no readable table lists that socket.

    A connecting socket is listed from its SYN on, before the listener can accept it, but a
    table is read in pieces while sockets come and go, which can skip a row: a miss is
    looked up once more."""
    try:
        client = sock.getpeername()[:2]
        server = sock.getsockname()[:2]
    except OSError:
        return None
    for _attempt in range(2):
        for table in tables:
            uid = _lookup(table, client, server)
            if uid is not None:
                return uid
    return None


def _lookup(table: str, client: tuple[str, int], server: tuple[str, int]) -> int | None:
    v6 = table.endswith("6")
    try:
        wanted = (_address(*client, v6=v6), _address(*server, v6=v6))
        with open(table, encoding="ascii") as entries:
            rows = entries.read().splitlines()[1:]
    except (OSError, ValueError):
        return None
    for row in rows:
        fields = row.split()
        # sl local_address rem_address st tx:rx tr:when retrnsmt uid ...: the client's socket
        if len(fields) > 7 and (fields[1], fields[2]) == wanted:
            try:
                return int(fields[7])
            except ValueError:
                return None
    return None


def _address(host: str, port: int, *, v6: bool = False) -> str:
    """``127.0.0.1``, 8999 as the table writes it: ``0100007F:2327`` in ``tcp``, and
    ``0000000000000000FFFF00000100007F:2327`` (v4-mapped) in ``tcp6``: the address in 32-bit
    words, each as the machine's own integer, in hex."""
    ip = ipaddress.ip_address(host.partition("%")[0])
    if v6 and ip.version == 4:
        ip = ipaddress.IPv6Address(f"::ffff:{ip}")
    if (ip.version == 6) != v6:
        raise ValueError(f"{host} is not listed in this table")
    packed = ip.packed
    words = (int.from_bytes(packed[i : i + 4], sys.byteorder) for i in range(0, len(packed), 4))
    return "".join(f"{word:08X}" for word in words) + f":{port:04X}"


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ``::1`` or a v4-mapped loopback address: a peer of this network namespace."""
    ip = ipaddress.ip_address(host.partition("%")[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def is_this_user(sock: socket.socket, tables: tuple[str, ...] = TABLES) -> bool:
    """Whether the client at the other end of ``sock`` is this user or root.

    A loopback client always has a socket in this network namespace, so one that no table
    lists is refused. A client from another address that no table lists was relayed from
    outside this namespace (a port forward rewriting the destination to 127.0.0.1): no other
    local user can make one without a socket of their own here, so it is let through."""
    uid = peer_uid(sock, tables)
    if uid is not None:
        return uid in (os.getuid(), 0)
    try:
        return not is_loopback(sock.getpeername()[0])
    except (OSError, ValueError):
        return False
