"""Count the adversarial suite's cases by kind and print the table of docs/adversarial.md.

    python tests/adversarial/count_cases.py            # the markdown table, from collection
    python tests/adversarial/count_cases.py --check    # exit 1 if the document disagrees

Every test in this folder carries ``@pytest.mark.attack("<kind>")`` (its own, or else its
module's ``pytestmark``); a case is one collected test item, so each parameter of a
parametrized test counts once. ``test_adv_report.py`` runs ``--check`` so the table cannot drift.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DOC = HERE.parent.parent / "docs" / "adversarial.md"
BEGIN, END = "<!-- cases:begin -->", "<!-- cases:end -->"

# kind -> (what is tried, what every case must end in)
KINDS: dict[str, tuple[str, str]] = {
    "id_token": (
        "ID token: OpenID RP certification cases (alg none, bad signatures, HS256 with the "
        "client id, iss, aud, azp, exp, iat, nbf, sub, kid, malformed), through the CLI",
        "exit 1, `ID token rejected: <check>`, keyring unchanged, previous session shown",
    ),
    "nonce": (
        "nonce missing or wrong: in-process `complete_login`, the PKCE flow through the CLI, "
        "and a third-party flow plugin (a real installed distribution) that never sends it",
        "`nonce missing` / `nonce mismatch`, nothing stored",
    ),
    "key_rotation": (
        "unknown `kid`, and a real key rotation (JWKS fetches counted), also without a `kid` "
        "and under the same `kid`",
        "rejection after one refetch; rotation accepted after exactly one refetch",
    ),
    "mix_up": (
        "discovery `issuer` not the configured one; authorization response `iss` wrong or "
        "missing (RFC 9207); a redirect with a forged state; another issuer called the "
        "exalsius login page",
        "exit 1 naming the mismatch, nothing stored",
    ),
    "discovery": (
        "discovery document faults: HTTP 500, HTML, not an object, huge, hang, reset, "
        "plain-http endpoints (also on loopback for an https issuer, remote or loopback), "
        "malformed endpoint URLs, JSON nested too deep, missing endpoints",
        "exit 1 before any flow starts, nothing stored",
    ),
    "jwks": (
        "JWKS endpoint faults: 500, HTML, no keys, huge, hang, reset, a redirect from https "
        "to http; a JWKS that hangs "
        "while the login fails for another reason (threads left running at exit)",
        "exit 1 `Cannot fetch the identity provider's signing keys` or why, nothing stored, "
        "no thread left behind",
    ),
    "token_endpoint": (
        "token endpoint at login (device code and PKCE): 500, HTML, non-JSON, no access_token, "
        "token_type not Bearer, several MB, hang, reset, 307 to another host; expires_in 0",
        "exit 1 with the reason, nothing stored, no secret sent elsewhere",
    ),
    "device_flow": (
        "device flow: slow_down storms, interval missing/absurd, expires_in 0 or invalid, "
        "denial, expiry, provider text with escapes, device code echoed back",
        "RFC 8628 timing kept, exit 1 with a clean message, nothing stored",
    ),
    "revocation": (
        "logout with the revocation endpoint failing: 500, HTML, hang, reset, huge, 307, "
        "discovery down",
        "exit 0, one warning line, every keyring entry removed, bounded time",
    ),
    "refresh": (
        "refresh lies: invalid_grant (with and without a newer login), 500, HTML, non-JSON, "
        "huge, hang, reset, another `sub`/`aud`/`azp`, bad ID token, JWKS down or keyring "
        "hanging after the rotation, no access_token, 307",
        "invalid_grant or another identity: session removed (invalid_grant only if unchanged); "
        "otherwise exit 1, session kept (with the rotated refresh token)",
    ),
    "providers": (
        "what standards let providers do (issue 14): a device grant without an ID token and "
        "userinfo failing (401, no sub, JWT, HTML, hang, not advertised, http), the code flow "
        "without one, another `sub` in the first refreshed ID token, `invalid_scope`, RFC 8414 "
        "metadata lying or hanging at logout",
        "login: exit 1, previous session kept; logout: one warning, entries removed",
    ),
    "slow_provider": (
        "a provider that trickles its answer a byte at a time, each read well within the "
        "timeout: discovery at login, the refresh (under the session lock), the JWKS body, "
        "revocation at logout",
        "cut off at the exchange's deadline naming the endpoint; exit 1, session kept "
        "(logout: exit 0, session removed)",
    ),
    "terminal_text": (
        "provider text with escape sequences and a bidi override wherever exls prints it: "
        "the authorization endpoint (and its OSC 8 link), discovery errors, URLs in network "
        "errors, a redirect's Location, refresh and revocation error codes, email and subject",
        "not one control character on stdout or stderr; the command ends as for plain text",
    ),
    "listener": (
        "hostile local callers against the PKCE loopback listener: paths, states, repeats, "
        "script injection, oversized and malformed requests, slow and parallel clients",
        "answered 4xx or dropped; the real redirect still completes, a forged one never",
    ),
    "property": (
        "property-based (hypothesis) tests of the redirect parser and listener",
        "every generated input answered or refused; only the exact state completes",
    ),
    "keyring": (
        "keyring faults through the CLI and in-process: unavailable, locked, cannot start, "
        "hangs, a commit write that times out and lands later, fails on the Nth write, "
        "corrupted/truncated/bytes values, disabled (null)",
        "`Failed to store/load token` + the fix, bounded time, previous session intact",
    ),
    "secrets": (
        "secrets hygiene: login (device and PKCE), refresh, logout under `python -X dev`, "
        "warnings on and DEBUG logging; every file and stream searched; the chunk pointer's "
        "repr; an API key in the SSO routes URL",
        "zero hits for any token, code, device code or verifier",
    ),
    "control": (
        "controls: the same harness against an honest provider (proves the cases can pass)",
        "exit 0, the new session stored",
    ),
}
UNCOUNTED = {"test_adv_report.py"}  # the consistency check itself


class Tally:
    """A pytest plugin that counts collected items by their attack kind."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.bugs: Counter[str] = Counter()  # cases marked xfail: known bugs, reported
        self.problems: list[str] = []

    def pytest_collection_modifyitems(self, items: list[Any]) -> None:
        for item in items:
            path = Path(str(item.path))
            if HERE not in path.parents or path.name in UNCOUNTED:
                continue
            marker = item.get_closest_marker("attack")  # a test's own beats its module's
            kind = marker.args[0] if marker is not None and marker.args else None
            if kind not in KINDS:
                self.problems.append(f"{item.nodeid}: attack kind {kind!r}")
                continue
            self.counts[kind] += 1
            if item.get_closest_marker("xfail") is not None:
                self.bugs[kind] += 1


def collect() -> Tally:
    import pytest

    tally = Tally()
    code = pytest.main(
        ["--collect-only", "-q", "-p", "no:cacheprovider", str(HERE)], plugins=[tally]
    )
    if code not in (0, 5):
        raise SystemExit(f"collection failed (pytest exit {code})")
    return tally


def table(tally: Tally) -> str:
    rows = [
        "| kind | what the suite tries | cases | of which known bugs (xfail) "
        "| every case must end in |",
        "|---|---|---:|---:|---|",
    ]
    for kind, (tried, outcome) in KINDS.items():
        rows.append(
            f"| `{kind}` | {tried} | {tally.counts[kind]} | {tally.bugs[kind]} | {outcome} |"
        )
    total, bugs = sum(tally.counts.values()), sum(tally.bugs.values())
    rows.append(f"| **total** | | **{total}** | **{bugs}** | |")
    return "\n".join(rows)


def documented() -> str:
    text = DOC.read_text(encoding="utf-8")
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def main(argv: list[str]) -> int:
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        tally = collect()
    for problem in tally.problems:
        print(f"unclassified: {problem}", file=sys.stderr)
    generated = table(tally)
    if "--check" in argv:
        if tally.problems or documented() != generated:
            print(f"{DOC} is out of date; its table should read:\n\n{generated}", file=sys.stderr)
            return 1
        return 0
    print(generated)
    return 1 if tally.problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
