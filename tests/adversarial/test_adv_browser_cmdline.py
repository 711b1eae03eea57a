"""The browser's command line is world-readable (issue 23, item 8), through the real CLI.

On Linux every local user can read ``/proc/PID/cmdline``: ``xdg-open <authorization URL>``
showed them the state, nonce and code challenge, enough to run their own authorization and
race its code to the loopback listener (logging the victim in as the attacker). exls now
starts the browser with an address of its listener, which redirects to the authorization
URL only a client of the same user (or root).

The stand-in browser here plays both parts: first another local user (``setpriv`` to
``nobody``) who read the command line and asks for the address, over IPv4 and then from an
IPv6 socket to ``::ffff:127.0.0.1`` (the v4-mapped loopback, which reaches the IPv4 listener
but is listed in ``/proc/net/tcp6`` only), then the user's browser.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from adv_kit import EMAIL, Result, Sandbox, Scenarios
from lying_idp import LyingIdP, Tenant

pytestmark = pytest.mark.attack("listener")

NOBODY = 65534

# Another local user's view: GET the address (no redirect followed), print status and Location.
# An optional second argument is the host to connect to instead: ``::ffff:127.0.0.1`` reaches
# the IPv4 listener from an IPv6 socket, which the kernel lists in /proc/net/tcp6 only.
PROBE = """
import http.client, sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
host = sys.argv[2] if len(sys.argv) > 2 else u.hostname
c = http.client.HTTPConnection(host, u.port or 80, timeout=30)
c.request("GET", u.path + ("?" + u.query if u.query else ""))
r = c.getresponse()
print(r.status, r.getheader("Location") or "")
"""

BROWSER = """\
#!{python}
# A stand-in browser that another local user watches (see the module docstring).
import json, subprocess, sys, urllib.request
url = sys.argv[1]
def probe(*host):
    seen = subprocess.run(
        ["setpriv", "--reuid={uid}", "--regid={uid}", "--clear-groups", "/usr/bin/python3",
         "-c", {probe!r}, url, *host],
        capture_output=True, text=True, timeout=60, cwd="/",
    )
    return seen.stdout.strip() + seen.stderr.strip()
seen = {{"handed": url, "other_user": probe(), "other_user_v6": probe("::ffff:127.0.0.1")}}
with open({report!r}, "w") as out:
    json.dump(seen, out)
with urllib.request.urlopen(url, timeout=60) as response:  # the user's own browser
    response.read()
"""


@dataclass
class Watched:
    tenant: Tenant
    result: Result
    handed: str
    other_user: str
    other_user_v6: str


def watched_login(idp: LyingIdP, root: Path, name: str) -> Watched:
    tenant = idp.tenant(name)
    box = Sandbox(root / name, tenant)
    report = box.root / "browser-report.json"
    browser = box.root / "watched-browser.py"
    browser.write_text(
        BROWSER.format(python=sys.executable, uid=NOBODY, probe=PROBE, report=str(report))
    )
    browser.chmod(0o755)
    result = box.login("pkce", BROWSER=str(browser))
    seen = json.loads(report.read_text()) if report.exists() else {}
    return Watched(
        tenant,
        result,
        seen.get("handed", ""),
        seen.get("other_user", ""),
        seen.get("other_user_v6", ""),
    )


def scenarios(idp: LyingIdP, root: Path) -> Scenarios:
    if sys.platform != "linux" or os.getuid() != 0:
        return {}
    name = "browser-command-line-read-by-another-user"
    return {name: partial(watched_login, idp, root, name)}


@pytest.mark.parametrize("name", ["browser-command-line-read-by-another-user"])
def test_another_user_learns_nothing_from_the_browsers_command_line(
    name: str, outcomes: Any
) -> None:
    if sys.platform != "linux" or os.getuid() != 0:
        pytest.skip("needs Linux and root, to play another local user with setpriv")
    watched: Watched = outcomes[name]
    assert watched.result.rc == 0, watched.result  # the user's own browser still signs in
    assert f"Logged in as {EMAIL}" in watched.result.err, watched.result
    handed = urlsplit(watched.handed)
    secrets = {"state", "nonce", "code_challenge"} & set(parse_qs(handed.query))
    assert secrets == set(), watched.handed  # nothing of the login on the command line
    assert (handed.hostname, handed.path) == ("127.0.0.1", "/start"), watched.handed
    assert watched.other_user == "403", watched.other_user  # and the address refuses them
    # also from an IPv6 socket to ::ffff:127.0.0.1 (listed in /proc/net/tcp6 only)
    assert watched.other_user_v6 == "403", watched.other_user_v6
    (authorization,) = watched.tenant.authorizations  # only the user's browser got through
    assert authorization["state"] not in watched.handed
