"""Real processes: ten concurrent refreshes make one, and `exls auth token` stays light.

The keyring is the file-backed test backend (exls_test_filekeyring), shared by all processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from session_testkit import FakeIdP, make_session

from exls_core.session import SessionStore

HERE = Path(__file__).resolve().parent

CHILD = """
import contextlib, os, sys, time
from pathlib import Path
from exls_core.session import get_access_token
if os.environ.get("EXLS_TEST_NO_LOCK"):  # the negative control: what the lock prevents
    import exls_core.session.locking as locking
    locking.session_lock = lambda *a, **k: contextlib.nullcontext()
Path(sys.argv[1]).touch()
while not Path(sys.argv[2]).exists():
    time.sleep(0.002)
try:
    print(get_access_token())
except Exception as exc:
    print(exc, file=sys.stderr)
    sys.exit(1)
"""

PROBE = """
import json, os, sys
from exls_core.cli import run
try:
    run()
except SystemExit as exc:
    code = exc.code
with open(os.environ["EXLS_TEST_MODULES"], "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""


def race(tmp_path: Path, env: dict[str, str], count: int) -> list[subprocess.CompletedProcess[str]]:
    go = tmp_path / "go"
    procs = []
    for i in range(count):
        ready = tmp_path / f"ready-{i}"
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", CHILD, str(ready), str(go)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{i}").exists() for i in range(count)):
        assert time.monotonic() < deadline, "children did not start"
        time.sleep(0.01)
    go.touch()  # release them all at once
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def test_ten_processes_refresh_exactly_once(
    tmp_path: Path, idp: FakeIdP, shared_keyring: dict[str, str]
) -> None:
    SessionStore().save(make_session(idp.issuer, expires_at=time.time() - 5, refresh_token="rt-0"))
    idp.refresh_delay = 0.2  # long enough for every process to be waiting on the refresh
    results = race(tmp_path, shared_keyring, 10)
    assert [(r.returncode, r.stdout, r.stderr) for r in results] == [(0, "at-1\n", "")] * 10
    assert (idp.refreshes, idp.rejected) == (1, 0)
    stored = SessionStore().load()
    assert stored is not None and stored.refresh_token == "rt-1"


def test_without_the_lock_the_same_race_breaks_the_session(
    tmp_path: Path, idp: FakeIdP, shared_keyring: dict[str, str]
) -> None:
    # Negative control: proves the test above can fail.
    SessionStore().save(make_session(idp.issuer, expires_at=time.time() - 5, refresh_token="rt-0"))
    idp.refresh_gate = 2  # the first refresh waits for a second one: they surely overlap
    results = race(tmp_path, {**shared_keyring, "EXLS_TEST_NO_LOCK": "1"}, 10)
    assert idp.refreshes > 1 or idp.rejected > 0
    assert any(r.returncode != 0 for r in results) or idp.refreshes > 1


HEAVY = (
    "click",  # `exls auth token` alone is answered without click
    "requests",
    "urllib3",
    "rich",
    "jwt",
    "cryptography",
    "filelock",
    "pluggy",
    "qrcode",
    "requests_oauthlib",
    "exls_core.plugin",
    "exls_core.registry",
    "exls_flows_pkce",
    "exls_flows_device",
)


def test_auth_token_hot_path_is_light(
    tmp_path: Path, idp: FakeIdP, shared_keyring: dict[str, str]
) -> None:
    SessionStore().save(make_session(idp.issuer, access_token="at-valid"))
    report = tmp_path / "modules.json"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", PROBE, "auth", "token"],
        env={**shared_keyring, "EXLS_TEST_MODULES": str(report)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout == "at-valid\n"
    data = json.loads(report.read_text())
    assert data["code"] == 0
    modules = set(data["modules"])
    assert "keyring" in modules and "exls_core.session.store" in modules  # the probe sees imports
    lazy = {"exls_core.session.validation", "exls_core.session.login", "exls_core.session.revoke"}
    assert modules.isdisjoint(lazy)
    heavy = sorted(m for m in modules for h in HEAVY if m == h or m.startswith(h + "."))
    assert heavy == []
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert not any(m.split(".")[0] in {"requests", "jwt", "cryptography", "rich"} for m in imported)
    assert idp.discovery_hits == 0 and idp.refreshes == 0
