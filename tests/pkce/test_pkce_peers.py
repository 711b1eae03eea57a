"""Who owns the other end of a loopback connection (Linux), and the listener's /start
address built on it (issue 23, item 8). Another uid's view is in
tests/adversarial/test_adv_browser_cmdline.py (it needs root to play one)."""

from __future__ import annotations

import os
import socket
import sys

import pytest
from pkce_fakes import ISSUER, get

from exls_flows_pkce import peers
from exls_flows_pkce.listener import CallbackListener

linux = pytest.mark.skipif(sys.platform != "linux", reason="/proc/net/tcp is Linux's")


@linux
def test_the_socket_table_names_this_user_as_the_client() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname(), timeout=10)
        accepted, _ = server.accept()
        with client, accepted:
            assert peers.peer_uid(accepted) == os.getuid()
            assert peers.is_this_user(peers.peer_uid(accepted))


def test_a_client_the_table_does_not_know_is_none(tmp_path: os.PathLike[str]) -> None:
    table = os.path.join(tmp_path, "tcp")
    with open(table, "w") as out:  # the header line only: no sockets at all
        out.write("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when uid\n")
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname(), timeout=10)
        accepted, _ = server.accept()
        with client, accepted:
            assert peers.peer_uid(accepted, table) is None
            assert peers.peer_uid(accepted, os.path.join(tmp_path, "missing")) is None


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
        assert "location" not in get(listener.port, "/start").headers
