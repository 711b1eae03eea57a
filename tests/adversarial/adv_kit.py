"""The adversarial suite's harness: a sandbox per scenario and the real ``exls`` CLI in it.

A :class:`Sandbox` is one user account in miniature: its own HOME, XDG directories, TMPDIR
and file-backed test keyring (``exls_test_filekeyring``, the stand-in for the OS keyring,
shared between processes). ``sandbox.exls("login", ...)`` runs ``python -m exls_core.cli``
in it as a subprocess, exactly as a user would.

Scenarios that wait (the device code flow's interval is at least one second, faults wait
for timeouts) run concurrently through :class:`Scheduler`; the tests then only check the
outcome.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, TypeVar

from adv_keyrings import DirKeyring
from lying_idp import CLIENT_ID, Tenant

from exls_core.session import Session, SessionStore
from exls_core.session.keyring_calls import Keyring

ADV = Path(__file__).resolve().parent
TESTS = ADV.parent
SESSION_TESTS = TESTS / "session"
FILE_KEYRING = "exls_test_filekeyring.FileKeyring"
FAULTY_KEYRING = "adv_keyrings.FaultyKeyring"
EMAIL = "alice@example.com"
PREVIOUS_EMAIL = "previous@example.com"
PREVIOUS_SUBJECT = "auth0|previous"

# `exls` with root logging at DEBUG: exls has no logging switch of its own, so this is the
# most any library it uses (urllib3, requests-oauthlib, keyring...) can be made to say.
DEBUG_WRAPPER = """
import logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
sys.argv = ["exls", *sys.argv[1:]]
from exls_core.cli import run
run()
"""

# `exls` that writes, at exit (after non-daemon threads were joined, before daemon threads
# are stopped), the names of the threads still running to EXLS_TEST_THREADS_AT_EXIT.
THREADS_AT_EXIT_WRAPPER = """
import atexit, os, sys, threading
def report():
    alive = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    with open(os.environ["EXLS_TEST_THREADS_AT_EXIT"], "w") as out:
        out.write("\\n".join(alive))
atexit.register(report)
sys.argv = ["exls", *sys.argv[1:]]
from exls_core.cli import run
run()
"""

BROWSER_SCRIPT = """\
#!{python}
# A stand-in browser: load the authorization URL at the lying provider, which then sends the
# redirect to exls's loopback listener. Like webbrowser expects, it returns at once.
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=60) as response:
    response.read()
"""


@dataclass(repr=False)
class Result:
    """One finished exls process."""

    args: tuple[str, ...]
    rc: int
    out: str
    err: str
    elapsed: float

    @property
    def error(self) -> str:
        """The ``Error: ...`` line exls printed, without the prefix ("" when none)."""
        for line in self.err.splitlines():
            if line.startswith("Error: "):
                return line.removeprefix("Error: ")
        return ""

    def __repr__(self) -> str:  # what an assertion failure shows
        return (
            f"exls {' '.join(self.args)} -> {self.rc} in {self.elapsed:.1f}s\n"
            f"--- stdout\n{self.out}--- stderr\n{self.err}"
        )


KERNEL_SCOPES: list[str] = []  # every sandbox's kernel key scope, removed after the session


@dataclass
class Sandbox:
    """HOME, XDG directories, TMPDIR, a test keyring and a kernel key scope for one scenario.

    Scenarios run in the background across tests, so each has a kernel key scope of its own
    (EXLS_KERNEL_KEY_SCOPE) instead of the one of whichever test is running meanwhile.
    """

    root: Path
    tenant: Tenant | None = None
    runs: list[Result] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.kernel_scope = f"adv-{uuid.uuid4().hex[:12]}"
        KERNEL_SCOPES.append(self.kernel_scope)
        self.home = self.root / "home"
        self.config = self.home / ".config"
        self.cache = self.home / ".cache"
        self.state = self.home / ".local" / "state"
        self.tmp = self.root / "tmp"
        self.runtime = self.root / "run"
        # Where a desktop keyring would keep its file; the one place tokens may be.
        self.keyring_dir = self.home / ".local" / "share" / "exls-test-keyring"
        for path in (self.config, self.cache, self.state, self.tmp, self.keyring_dir):
            path.mkdir(parents=True, exist_ok=True)
        self.runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.browser = self.root / "browser.py"
        self.browser.write_text(BROWSER_SCRIPT.format(python=sys.executable))
        self.browser.chmod(0o755)

    # --- running exls

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.config),
            "XDG_CACHE_HOME": str(self.cache),
            "XDG_STATE_HOME": str(self.state),
            "XDG_DATA_HOME": str(self.home / ".local" / "share"),
            "XDG_RUNTIME_DIR": str(self.runtime),
            "TMPDIR": str(self.tmp),
            "PYTHONPATH": os.pathsep.join([str(ADV), str(SESSION_TESTS)]),
            "PYTHON_KEYRING_BACKEND": FILE_KEYRING,
            "EXLS_TEST_KEYRING_DIR": str(self.keyring_dir),
            "EXLS_AUTH_CLIENT_ID": CLIENT_ID,
            "EXLS_AUTH_AUDIENCE": "",
            "EXLS_AUTH_CALLBACK_PORTS": "0",
            "EXLS_AUTH_PKCE_TIMEOUT": "20",
            # exls's 10 s default was too short for the file keyring's first call on a machine
            # with a load average above 80 (seen in the soak); a scenario sets its own to test it.
            "EXLS_KEYRING_TIMEOUT": "60",
            "BROWSER": str(self.browser),
            "NO_COLOR": "1",
        }
        if self.tenant is not None:
            env["EXLS_AUTH_ISSUER"] = self.tenant.issuer
        env["EXLS_KERNEL_KEY_SCOPE"] = self.kernel_scope
        env.update(extra)
        return env

    def exls(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
        debug: bool = False,
        wrapper: str | None = None,
    ) -> Result:
        """Run the real CLI; ``debug``: under ``python -X dev -W always`` with DEBUG logging;
        ``wrapper``: Python code that runs exls its own way (``python -c wrapper args``)."""
        if debug:
            command = [sys.executable, "-X", "dev", "-W", "always", "-c", DEBUG_WRAPPER]
        elif wrapper is not None:
            command = [sys.executable, "-c", wrapper]
        else:
            command = [sys.executable, "-m", "exls_core.cli"]
        started = time.monotonic()
        done = subprocess.run(
            [*command, *args],
            env=dict(env) if env is not None else self.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.home,
        )
        result = Result(args, done.returncode, done.stdout, done.stderr, time.monotonic() - started)
        self.runs.append(result)
        return result

    def login(self, flow: str = "device_code", **env: str) -> Result:
        return self.exls(
            "login", "--auth-flow", flow, "--email", EMAIL, "--no-qr", env=self.env(**env)
        )

    def status(self, **env: str) -> tuple[int, dict[str, Any] | None]:
        """``exls auth status --json``: the exit code and the JSON (None if not JSON)."""
        result = self.exls("auth", "status", "--json", env=self.env(**env))
        try:
            return result.rc, json.loads(result.out)
        except ValueError:
            return result.rc, None

    # --- the keyring, seen from the test

    def keyring(self) -> dict[str, str]:
        """Every entry of the test keyring, by file name: compare before and after."""
        return {
            path.name: path.read_text(encoding="utf-8")
            for path in sorted(self.keyring_dir.iterdir())
        }

    def store(self) -> SessionStore:
        return SessionStore(Keyring(DirKeyring(self.keyring_dir)))

    def seed(self, **overrides: Any) -> Session:
        """Store a previous login (another account) the scenario must not lose."""
        assert self.tenant is not None
        now = time.time()
        values: dict[str, Any] = {
            "issuer": self.tenant.issuer,
            "client_id": CLIENT_ID,
            "access_token": "PREV-AT-unchanged",
            "expires_at": now + 3600,
            "refresh_token": "PREV-RT-unchanged",
            "id_token": "PREV.ID.unchanged",
            "scopes": ("openid", "profile", "email", "offline_access"),
            "flow": "device_code",
            "subject": PREVIOUS_SUBJECT,
            "email": PREVIOUS_EMAIL,
            "logged_in_at": now - 60,
        }
        values.update(overrides)
        session = Session(**values)
        self.store().save(session)
        return session


T = TypeVar("T")
Scenarios = Mapping[str, Callable[[], Any]]
SCENARIO_WORKERS = 10  # scenarios mostly wait (device interval, timeouts), so more than cores


class Outcomes(Generic[T]):
    """A test module's view on its scenarios: ``outcomes[name]`` waits for one."""

    def __init__(self, scheduler: Scheduler, module: str) -> None:
        self._scheduler = scheduler
        self._module = module

    def __getitem__(self, name: str) -> T:
        result: T = self._scheduler.result(self._module, name)
        return result


class Scheduler:
    """Runs the CLI scenarios of every selected test module in one pool, from the start.

    A module declares ``scenarios(idp, root) -> {name: callable}``; its tests take the
    ``outcomes`` fixture and are parametrized by ``name``. At the first test of the session
    every selected scenario is started, so that the waiting (device code intervals, provider
    timeouts) of all modules overlaps, and with the in-process tests too. Each module has
    its own lying provider, which its in-process tests share.
    """

    def __init__(self, root: Path, workers: int = SCENARIO_WORKERS) -> None:
        from lying_idp import LyingIdP

        self._root = root
        self._idp_class = LyingIdP
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scenario")
        self._lock = threading.Lock()
        self.idps: dict[str, Any] = {}
        self._scenarios: dict[str, Scenarios] = {}
        self._futures: dict[tuple[str, str], Future[Any]] = {}

    def idp(self, module: ModuleType) -> Any:
        with self._lock:
            if module.__name__ not in self.idps:
                self.idps[module.__name__] = self._idp_class().__enter__()
            return self.idps[module.__name__]

    def start(self, module: ModuleType, names: list[str]) -> None:
        factory = getattr(module, "scenarios", None)
        if factory is None:
            return
        idp = self.idp(module)
        with self._lock:
            if module.__name__ not in self._scenarios:
                root = self._root / module.__name__
                root.mkdir(parents=True, exist_ok=True)
                self._scenarios[module.__name__] = factory(idp, root)
            scenarios = self._scenarios[module.__name__]
            for name in names:
                key = (module.__name__, name)
                if name in scenarios and key not in self._futures:
                    self._futures[key] = self._pool.submit(scenarios[name])

    def start_selected(self, items: list[Any]) -> None:
        """Start the scenarios the selected tests (after -k, node ids) will ask for."""
        wanted: dict[ModuleType, dict[str, None]] = {}
        for item in items:
            callspec = getattr(item, "callspec", None)
            module = getattr(item, "module", None)
            if module is None or "outcomes" not in getattr(item, "fixturenames", ()):
                continue
            if callspec is not None and "name" in callspec.params:
                wanted.setdefault(module, {})[callspec.params["name"]] = None
        for module, names in wanted.items():
            self.start(module, list(names))

    def result(self, module: str, name: str) -> Any:
        if (module, name) not in self._futures:
            self.start(sys.modules[module], [name])
        return self._futures[(module, name)].result(timeout=300)

    def close(self) -> list[str]:
        """Stop everything; the errors the lying providers met (bugs of the fake)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        errors = []
        for idp in self.idps.values():
            idp.__exit__(None, None, None)
            errors += idp.errors
        return errors


def assert_clean_rejection(result: Result, before: dict[str, str], after: dict[str, str]) -> None:
    """Exit 1 with one ``Error:`` line, no data on stdout, the keyring untouched."""
    assert result.rc == 1, result
    assert result.out == "", result
    assert result.error, result
    assert "Traceback" not in result.err, result
    assert after == before, "the keyring changed"


@dataclass
class Outcome:
    """A login attempted over a previous session: what was there, what happened, what is."""

    tenant: Tenant
    box: Sandbox
    before: dict[str, str]
    result: Result
    after: dict[str, str]
    status: tuple[int, dict[str, Any] | None]

    def previous_intact(self) -> bool:
        rc, data = self.status
        return rc == 0 and data is not None and data.get("email") == PREVIOUS_EMAIL

    def logged_in_as_alice(self) -> bool:
        rc, data = self.status
        return rc == 0 and data is not None and data.get("email") == EMAIL


def login_scenario(
    idp: Any,
    root: Path,
    name: str,
    *,
    flow: str = "device_code",
    env: Mapping[str, str] | None = None,
    prepare: Callable[[Tenant, Sandbox], None] | None = None,
    **config: Any,
) -> Outcome:
    """A tenant configured with ``config``, a sandbox holding a previous session, one login."""
    tenant: Tenant = idp.tenant(name, **config)
    box = Sandbox(root / name, tenant)
    box.seed()
    if prepare is not None:
        prepare(tenant, box)
    before = box.keyring()
    result = box.login(flow, **dict(env or {}))
    after = box.keyring()
    return Outcome(tenant, box, before, result, after, box.status())


def leaks(tenant: Tenant, *texts: str) -> list[str]:
    """The kinds of secrets the tenant issued (or received) that appear in any of ``texts``."""
    found = []
    for kind, values in tenant.all_secrets().items():
        if any(value and value in text for value in values for text in texts):
            found.append(kind)
    return found


def spawn(
    box: Sandbox, *args: str, env: Mapping[str, str], stdin: int = subprocess.DEVNULL
) -> subprocess.Popen[str]:
    """Start exls without waiting (the test plays other parts meanwhile); ``stdin=PIPE`` to
    answer its prompts."""
    return subprocess.Popen(
        [sys.executable, "-m", "exls_core.cli", *args],
        env=dict(env),
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=box.home,
    )


def finish(box: Sandbox, process: subprocess.Popen[str], started: float) -> Result:
    out, err = process.communicate(timeout=60)
    args = tuple(str(arg) for arg in list(process.args)[3:])  # type: ignore[arg-type]
    result = Result(args, process.returncode, out, err, time.monotonic() - started)
    box.runs.append(result)
    return result
