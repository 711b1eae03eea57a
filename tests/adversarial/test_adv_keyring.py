"""Keyring faults, through the real CLI and in-process.

The keyring is the file-backed test keyring made to misbehave (adv_keyrings.FaultyKeyring),
or keyring's own ``fail`` and ``null`` backends. Over a stored session, every command must
end with ``Failed to store token`` / ``Failed to load token`` and the fix, in bounded time
(EXLS_KEYRING_TIMEOUT=1 against a keyring that never answers), and the session must still
be there for a healthy keyring afterwards.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import adv_keyrings
import pytest
from adv_keyrings import DirKeyring, FaultyKeyring
from adv_kit import EMAIL, FAULTY_KEYRING, PREVIOUS_EMAIL, Outcomes, Result, Sandbox, Scenarios
from lying_idp import LyingIdP, Tenant

from exls_core.session import CorruptedSession, Session, SessionStore, StoreError
from exls_core.session.keyring_calls import DISABLED_HINT, Keyring, fix_hint

pytestmark = pytest.mark.attack("keyring")

FAIL_BACKEND = "keyring.backends.fail.Keyring"
NULL_BACKEND = "keyring.backends.null.Keyring"
COMMANDS = {
    "login": ("login", "--auth-flow", "device_code", "--email", EMAIL, "--no-qr"),
    "status": ("auth", "status"),
    "status-json": ("auth", "status", "--json"),
    "token": ("auth", "token"),
    "logout": ("logout",),
}
CORRUPTED = "Failed to load token: stored session is corrupted"
CORRUPTED_HINT = 'Run "exls logout", then "exls login".'

# backend fault -> the cause exls must name
UNUSABLE = {
    "fail": "no keyring backend is available",
    "locked": "the keyring is locked",
    "init": "the keyring could not start (cannot connect to the Secret Service bus)",
    "hang": "the keyring did not answer within 1 s; exls makes no more keyring calls in this run",
}


def all_cases() -> dict[str, tuple[str, str, str]]:
    """name -> (keyring backend, fault, command)."""
    cases: dict[str, tuple[str, str, str]] = {}
    for fault in UNUSABLE:
        backend = FAIL_BACKEND if fault == "fail" else FAULTY_KEYRING
        cases |= {f"{fault}-{command}": (backend, fault, command) for command in COMMANDS}
    for n in range(1, 7):
        cases[f"fail-write-{n}-login"] = (FAULTY_KEYRING, f"fail-write={n}", "login")
    for fault in ("corrupt", "truncate"):
        cases |= {f"{fault}-{command}": (FAULTY_KEYRING, fault, command) for command in COMMANDS}
    for command in ("status", "status-json", "token"):
        cases[f"bytes-{command}"] = (FAULTY_KEYRING, "bytes", command)
    cases["disabled-login"] = (NULL_BACKEND, "", "login")
    return cases


CASES = all_cases()


@dataclass
class Run:
    tenant: Tenant
    box: Sandbox
    before: dict[str, str]
    result: Result
    after: dict[str, str]
    healthy_status: tuple[int, dict[str, Any] | None]


def scenario(idp: LyingIdP, root: Path, name: str, backend: str, fault: str, command: str) -> Run:
    tenant = idp.tenant(name)
    box = Sandbox(root / name, tenant)
    box.seed()
    before = box.keyring()
    env = box.env(
        PYTHON_KEYRING_BACKEND=backend,
        EXLS_TEST_KEYRING_FAULT=fault,
        EXLS_TEST_KEYRING_HANG="30",  # without exls's own bound, 30 s
        # Tight only where the keyring hangs: a loaded machine may need a second to start it.
        EXLS_KEYRING_TIMEOUT="1" if fault == "hang" else "60",
    )
    result = box.exls(*COMMANDS[command], env=env)
    return Run(tenant, box, before, result, box.keyring(), box.status())


def late_commit_scenario(idp: LyingIdP, root: Path, name: str) -> tuple[Run, list[str]]:
    """A login whose commit write (the pointer) outlives the timeout; the calls attempted."""
    tenant = idp.tenant(name)
    box = Sandbox(root / name, tenant)
    box.seed()
    before = box.keyring()
    log = box.root / "keyring-calls.log"
    env = box.env(
        PYTHON_KEYRING_BACKEND=FAULTY_KEYRING,
        EXLS_TEST_KEYRING_FAULT="hang-set=session",  # held 120 s, then it would land
        EXLS_TEST_KEYRING_HANG="120",
        EXLS_TEST_KEYRING_LOG=str(log),
        EXLS_KEYRING_TIMEOUT="10",  # the default: starting a keyring takes seconds when loaded
    )
    result = box.exls(*COMMANDS["login"], env=env)
    run = Run(tenant, box, before, result, box.keyring(), box.status())
    return run, log.read_text(encoding="utf-8").splitlines()


def scenarios(idp: LyingIdP, root: Path) -> Scenarios:
    cases = {name: partial(scenario, idp, root, name, *case) for name, case in CASES.items()}
    cases[LATE_COMMIT] = partial(late_commit_scenario, idp, root, LATE_COMMIT)
    return cases


LATE_COMMIT = "commit-write-times-out-login"


def previous_intact(run: Run) -> bool:
    rc, status = run.healthy_status
    return (
        run.after == run.before
        and rc == 0
        and status is not None
        and (status["email"] == PREVIOUS_EMAIL)
    )


def names(*faults: str, commands: tuple[str, ...] = tuple(COMMANDS)) -> list[str]:
    """Cases whose fault is one of ``faults`` ("fail-write" matches every N)."""
    return [n for n, (_, f, c) in CASES.items() if f.partition("=")[0] in faults and c in commands]


FOR_PEOPLE = ("login", "status", "token", "logout")  # commands whose answer is a message


@pytest.mark.parametrize("name", names(*UNUSABLE, commands=FOR_PEOPLE))
def test_an_unusable_keyring_says_so_with_the_fix(name: str, outcomes: Outcomes[Run]) -> None:
    run = outcomes[name]
    _, fault, command = CASES[name]
    verb = "store" if command == "login" else "load"
    assert (run.result.rc, run.result.out) == (1, ""), run.result
    assert run.result.err.splitlines()[-2:] == [
        f"Error: Failed to {verb} token: {UNUSABLE[fault]}",
        fix_hint(),
    ], run.result
    assert "Traceback" not in run.result.err
    # exls gave up on a hung keyring and exited: the 30 s hang never ran out.
    assert not (run.box.keyring_dir.parent / adv_keyrings.RAN_OUT).exists(), run.result
    assert previous_intact(run), run.healthy_status
    assert run.tenant.hits["device"] == 0  # nobody was sent to sign in for nothing


@pytest.mark.parametrize("name", names("fail-write"))
def test_a_write_failing_anywhere_leaves_one_whole_session(
    name: str, outcomes: Outcomes[Run]
) -> None:
    run = outcomes[name]
    rc, status = run.healthy_status
    assert rc == 0 and status is not None, run.healthy_status  # never a corrupted store
    n = int(name.split("-")[2])
    if run.result.rc == 1:  # refused before the commit: the previous session stays
        assert run.result.error.startswith("Failed to store token: PasswordSetError: write ")
        assert int(run.result.error.split()[6]) >= n, run.result  # the Nth write or a later one
        assert status["email"] == PREVIOUS_EMAIL
    else:  # failed after the commit (cleaning the old slot): the new session is whole
        assert run.result.rc == 0, run.result
        assert status["email"] == EMAIL


def test_the_write_sweep_has_a_single_commit_point(outcomes: Outcomes[Run]) -> None:
    """Writes before the commit refuse the login, writes after it do not: one switch-over."""
    sweep = names("fail-write")
    refused = [outcomes[name].result.rc == 1 for name in sweep]
    assert refused[0] and not refused[-1], refused  # both sides of the commit were hit
    assert refused == sorted(refused, reverse=True), refused


@pytest.mark.parametrize(
    "name", names("corrupt", "truncate", "bytes", commands=("status", "token"))
)
def test_an_unreadable_session_is_reported_not_used(name: str, outcomes: Outcomes[Run]) -> None:
    run = outcomes[name]
    assert (run.result.rc, run.result.out) == (1, ""), run.result
    if name.startswith("bytes"):
        expected = [
            "Error: Failed to load token: the keyring returned a bytes, not text",
            fix_hint(),
        ]
    else:
        expected = [f"Error: {CORRUPTED}", CORRUPTED_HINT]
    assert run.result.err.splitlines()[-2:] == expected, run.result
    assert previous_intact(run)


def read_error(fault: str) -> str:
    if fault in UNUSABLE:
        return f"Failed to load token: {UNUSABLE[fault]}"
    if fault == "bytes":
        return "Failed to load token: the keyring returned a bytes, not text"
    return CORRUPTED


@pytest.mark.parametrize(
    "name", names(*UNUSABLE, "corrupt", "truncate", "bytes", commands=("status-json",))
)
def test_status_json_answers_scripts_with_the_keyring_error(
    name: str, outcomes: Outcomes[Run]
) -> None:
    run = outcomes[name]
    assert run.result.rc == 1, run.result
    answer = json.loads(run.result.out)
    assert answer == {
        "logged_in": False,
        "session_store": "keyring",
        "keyring_backend": answer["keyring_backend"],
        "keyring_error": read_error(CASES[name][1]),
        "keyring_hint": answer["keyring_hint"],
    }, run.result
    assert answer["keyring_hint"], run.result  # the fix: start the keyring, or log in again
    assert previous_intact(run)


@pytest.mark.parametrize("name", ["locked-status-json"])
def test_status_json_still_tells_people_the_fix(name: str, outcomes: Outcomes[Run]) -> None:
    run = outcomes[name]
    assert fix_hint() in run.result.err, run.result


@pytest.mark.parametrize("name", names("corrupt", "truncate", commands=("logout",)))
def test_logout_clears_a_corrupted_session(name: str, outcomes: Outcomes[Run]) -> None:
    run = outcomes[name]
    assert (run.result.rc, run.result.out, run.result.err) == (0, "", "Logged out.\n"), run.result
    assert run.after == {}
    assert run.healthy_status[0] == 1


@pytest.mark.parametrize("name", names("corrupt", "truncate", commands=("login",)))
def test_login_replaces_a_corrupted_session(name: str, outcomes: Outcomes[Run]) -> None:
    run = outcomes[name]
    assert run.result.rc == 0, run.result
    rc, status = run.healthy_status
    assert rc == 0 and status is not None and status["email"] == EMAIL


@pytest.mark.parametrize("name", [LATE_COMMIT])
def test_a_write_that_timed_out_is_never_retried(
    name: str, outcomes: Outcomes[tuple[Run, list[str]]]
) -> None:
    run, calls = outcomes[name]
    assert (run.result.rc, run.result.out) == (1, ""), run.result
    assert run.result.err.splitlines()[-2:] == [
        f"Error: Failed to store token: {UNUSABLE['hang'].replace('1 s', '10 s')}",
        fix_hint(),
    ], run.result
    # The pointer write is the last call: no second pointer write to race the first one.
    assert calls.count("set session") == 1 and calls[-1] == "set session", calls
    rc, status = run.healthy_status  # the new chunks were written, but never committed
    assert rc == 0 and status is not None and status["email"] == PREVIOUS_EMAIL, status
    assert run.result.elapsed < 60, run.result  # it did not wait for the write (120 s)


@pytest.mark.parametrize("name", ["disabled-login"])
def test_a_disabled_keyring_is_not_mistaken_for_storage(name: str, outcomes: Outcomes[Run]) -> None:
    run = outcomes[name]
    assert (run.result.rc, run.result.out) == (1, ""), run.result
    assert run.result.err.splitlines()[-2:] == [
        "Error: Failed to store token: the keyring is disabled (keyring.backends.null)",
        DISABLED_HINT,  # not the Secret Service advice: nothing is broken, it is turned off
    ], run.result
    assert previous_intact(run)
    assert run.tenant.hits["device"] == 0


# --- in-process: every write position of a store, and bounded reads


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[Path, SessionStore]]:
    directory = tmp_path / "keyring"
    directory.mkdir()
    adv_keyrings.ENDED.clear()
    yield directory, SessionStore(Keyring(DirKeyring(directory)))
    adv_keyrings.RELEASE.set()  # let abandoned hanging calls finish (the guard waits for them)
    adv_keyrings.RELEASE.clear()  # a woken wait() returns True all the same


def make(email: str, size: int) -> Session:
    now = time.time()
    return Session(
        issuer="https://idp.example",
        client_id="c",
        access_token="AT-" + "a" * size,
        expires_at=now + 3600,
        refresh_token="RT-" + "r" * size,
        id_token="ID-" + "i" * size,
        scopes=("openid",),
        flow="device_code",
        subject=email,
        email=email,
        logged_in_at=now,
    )


@pytest.mark.parametrize("n", range(1, 13))
def test_in_process_every_write_position_keeps_one_whole_session(
    n: int, stores: tuple[Path, SessionStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, healthy = stores
    monkeypatch.setenv("EXLS_TEST_KEYRING_DIR", str(directory))
    healthy.save(make("old@example.com", 1500))  # four chunks
    faulty = SessionStore(Keyring(FaultyKeyring(f"fail-write={n}")))
    try:
        faulty.save(make("new@example.com", 2500))  # eight chunks
        committed = True
    except StoreError as exc:
        assert exc.message.startswith("Failed to store token: PasswordSetError: write")
        committed = False
    loaded = healthy.load()
    assert loaded is not None
    assert loaded.email == ("new@example.com" if committed else "old@example.com")
    if n <= 8:  # one of the eight new chunks: certainly before the commit
        assert not committed


def test_in_process_after_a_timeout_no_keyring_call_is_made(
    stores: tuple[Path, SessionStore], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    directory, healthy = stores
    log = tmp_path / "calls.log"
    monkeypatch.setenv("EXLS_TEST_KEYRING_DIR", str(directory))
    monkeypatch.setenv("EXLS_TEST_KEYRING_LOG", str(log))
    monkeypatch.setenv("EXLS_KEYRING_TIMEOUT", "2")  # not tight: other calls must make it
    healthy.save(make("old@example.com", 1500))
    faulty = SessionStore(Keyring(FaultyKeyring("hang-set=session")))  # holds it until RELEASE
    with pytest.raises(StoreError, match="exls makes no more keyring calls in this run"):
        faulty.save(make("new@example.com", 1500))
    calls = log.read_text(encoding="utf-8").splitlines()
    assert calls.count("set session") == 1 and calls[-1] == "set session", calls
    adv_keyrings.RELEASE.set()  # the abandoned pointer write lands now
    deadline = time.monotonic() + 30
    while (landed := healthy.load()) is not None and landed.email != "new@example.com":
        assert time.monotonic() < deadline, "the abandoned write never landed"
        time.sleep(0.05)
    assert landed is not None  # late, but whole: the chunks were complete before the commit
    for again in (lambda: faulty.save(make("third@example.com", 10)), faulty.load):
        with pytest.raises(StoreError, match="exls makes no more keyring calls in this run"):
            again()
    assert log.read_text(encoding="utf-8").splitlines() == calls  # not even a read


@pytest.mark.parametrize("fault", ["corrupt", "truncate", "bytes", "locked", "init", "hang"])
def test_in_process_a_bad_read_is_a_clear_bounded_error(
    fault: str, stores: tuple[Path, SessionStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, healthy = stores
    monkeypatch.setenv("EXLS_TEST_KEYRING_DIR", str(directory))
    monkeypatch.setenv("EXLS_KEYRING_TIMEOUT", "0.5")
    healthy.save(make("old@example.com", 1500))
    faulty = SessionStore(Keyring(FaultyKeyring(fault)))
    with pytest.raises(StoreError) as error:
        faulty.load()
    assert adv_keyrings.ENDED == []  # load() gave up while the 30 s hang was still on
    assert error.value.message.startswith("Failed to load token: ")
    assert isinstance(error.value, CorruptedSession) == (fault in ("corrupt", "truncate"))
    assert error.value.hint in (fix_hint(), CORRUPTED_HINT)
    loaded = healthy.load()
    assert loaded is not None and loaded.email == "old@example.com"
