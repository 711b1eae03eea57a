"""Who owns the other end of a loopback connection (Linux), and the listener's /start
address built on it (issue 23, item 8). Another uid's view is in
tests/adversarial/test_adv_browser_cmdline.py (it needs root to play one)."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from pkce_fakes import ISSUER, get

from exls_flows_pkce import peers
from exls_flows_pkce.listener import CallbackListener

linux = pytest.mark.skipif(sys.platform != "linux", reason="/proc/net/tcp is Linux's")


def v4_mapped_client(port: int) -> socket.socket:
    """An IPv6 socket connected to the IPv4 listener: the kernel lists it in tcp6 only."""
    client = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    client.settimeout(10)
    client.connect(("::ffff:127.0.0.1", port))
    return client


@contextmanager
def connection(*, v4_mapped: bool = False) -> Iterator[tuple[socket.socket, socket.socket]]:
    """(client, accepted): a real loopback connection to an IPv4 listener, the client an
    IPv4 socket or an IPv6 one connected to ``::ffff:127.0.0.1``."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        if v4_mapped:
            client = v4_mapped_client(port)
        else:
            client = socket.create_connection(("127.0.0.1", port), timeout=10)
        accepted, _ = server.accept()
        with client, accepted:
            yield client, accepted


@linux
def test_the_socket_table_names_this_user_as_the_client() -> None:
    with connection() as (_client, accepted):
        assert peers.peer_uid(accepted) == os.getuid()
        assert peers.is_this_user(accepted)


def header_only(tmp_path: os.PathLike[str]) -> str:
    table = os.path.join(tmp_path, "tcp")
    with open(table, "w") as out:  # the header line only: no sockets at all
        out.write("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when uid\n")
    return table


def test_a_client_the_table_does_not_know_is_none(tmp_path: os.PathLike[str]) -> None:
    table = header_only(tmp_path)
    with connection() as (_client, accepted):
        assert peers.peer_uid(accepted, (table,)) is None
        assert peers.peer_uid(accepted, (os.path.join(tmp_path, "missing"),)) is None


@linux
def test_a_loopback_client_no_table_lists_is_refused(tmp_path: os.PathLike[str]) -> None:
    # every loopback socket is listed in tcp or tcp6 (this network namespace's): unlisted is
    # a lookup that failed, never "maybe a relay"
    table = header_only(tmp_path)
    for v4_mapped in (False, True):
        with connection(v4_mapped=v4_mapped) as (_client, accepted):
            assert not peers.is_this_user(accepted, (table,))
            assert not peers.is_this_user(accepted, (os.path.join(tmp_path, "missing"),))


class Relayed:
    """An accepted socket whose peer is no loopback address (a port forward rewrote the
    destination to 127.0.0.1): no table of this namespace lists it."""

    def getpeername(self) -> tuple[str, int]:
        return ("192.0.2.7", 40000)

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", 8999)


@linux
def test_only_a_client_from_outside_no_table_lists_is_let_through() -> None:
    assert peers.is_this_user(Relayed())  # type: ignore[arg-type]
    assert peers.peer_uid(Relayed()) is None  # type: ignore[arg-type]


def test_loopback_addresses_include_the_v4_mapped_ones() -> None:
    for host in ("127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1", "::ffff:127.9.9.9"):
        assert peers.is_loopback(host), host
    for host in ("192.0.2.7", "::ffff:192.0.2.7", "2001:db8::1", "0.0.0.0"):
        assert not peers.is_loopback(host), host


@linux
def test_a_v4_mapped_client_is_found_in_tcp6() -> None:
    with connection(v4_mapped=True) as (_client, accepted):
        assert accepted.getpeername()[0] == "127.0.0.1"  # the listener sees plain IPv4
        assert peers.peer_uid(accepted, (peers.PROC_NET_TCP,)) is None  # not in tcp
        assert peers.peer_uid(accepted, (peers.PROC_NET_TCP6,)) == os.getuid()
        assert peers.peer_uid(accepted) == os.getuid()
        assert peers.is_this_user(accepted)


@linux
def test_the_tcp6_row_is_the_one_the_kernel_prints() -> None:
    # ::ffff:127.0.0.1 in 32-bit words, each as this machine's integer (the kernel's %08X)
    with connection(v4_mapped=True) as (client, _accepted):
        host, port = client.getsockname()[:2]
        row = peers._address(host, port, v6=True)
        little = "0000000000000000FFFF00000100007F"
        big = "00000000000000000000FFFF7F000001"
        assert row == f"{little if sys.byteorder == 'little' else big}:{port:04X}"
        with open(peers.PROC_NET_TCP6, encoding="ascii") as table:
            assert any(line.split()[1:2] == [row] for line in table), row


@linux
def test_start_redirects_this_user_only_with_the_token() -> None:
    url = "https://idp.example/authorize?state=s&nonce=n&code_challenge=c"
    with CallbackListener(state="s" * 43, issuer=ISSUER, ports=(0,)) as listener:
        handed = listener.browser_url(url)
        assert handed.startswith(f"http://127.0.0.1:{listener.port}/start?t=")
        assert "state" not in handed and "code_challenge" not in handed
        target = handed.removeprefix(f"http://127.0.0.1:{listener.port}")
        reply = get(listener.port, target)
        assert (reply.status, reply.headers["location"]) == (303, url)
        assert get(listener.port, target).status == 303  # a reload works too
        assert get(listener.port, "/start?t=guess").status == 404
        assert v4_mapped_get(listener.port, target) == 303  # this user over IPv6 too
        assert "location" not in get(listener.port, "/start").headers


def v4_mapped_get(port: int, target: str) -> int:
    with v4_mapped_client(port) as client:
        client.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        reply = client.makefile("rb").readline()
    return int(reply.split()[1])
