"""The installed `exls` console script as a subprocess, driven like a user would drive it.

    exls = ExlsCli(EXLS, base_env)                 # the `exls` fixture builds this
    result = exls.run("auth", "status", "--json")  # -> Result(returncode, stdout, stderr, ...)
    proc = exls.start("login", "--auth-flow", "device_code", "--email", EMAIL)
    uri, code = proc.device_code()                 # read from stderr while exls waits
    ...
    result = proc.finish()

`env=` changes are applied on top of the base environment; a value of None removes the
variable (e.g. `CI=None` to let the PKCE flow consider itself available).
Output is read line by line on reader threads, each line stamped with the wall clock (the
provider's events use it too), so tests can time what happened between two lines or events.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from exls_testbed.browser import Browser, LoginResult
    from exls_testbed.idp import IdpServer

EXLS = Path(sys.executable).parent / "exls"

# exls_flows_device/display.py, when stderr is not a terminal.
VISIT = re.compile(r"^To sign in, visit: (\S+)$")
ENTER = re.compile(r"^and enter the code: (\S+)$")
LOGGED_IN = re.compile(r"^Logged in as (\S+)$")

# Variables of the caller that would change which flow exls picks or where it stores tokens.
STEERING = ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER", "SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY")


@dataclass(frozen=True)
class Line:
    stream: str  # "stdout" or "stderr"
    text: str
    wall: float  # time.time() when the line was read


@dataclass
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    lines: list[Line] = field(default_factory=list)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> Any:
        return json.loads(self.stdout)

    def line_time(self, pattern: str | re.Pattern[str]) -> float:
        """Wall-clock time of the first line matching pattern (search)."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        for line in self.lines:
            if regex.search(line.text):
                return line.wall
        raise AssertionError(f"no line matches {regex.pattern!r}:\n{self.describe()}")

    def describe(self) -> str:
        return (
            f"$ exls {' '.join(self.args)}  (exit {self.returncode}, {self.seconds:.1f} s)\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}---"
        )


class ExlsProcess:
    """A running exls; stdout and stderr are collected line by line as they come."""

    def __init__(
        self,
        executable: Path | str,
        args: Iterable[str],
        env: Mapping[str, str],
        *,
        stdin: str | None = None,
        keep_stdin_open: bool = False,
    ) -> None:
        self.args = tuple(args)
        self.started = time.monotonic()
        self.lines: list[Line] = []
        self._changed = threading.Condition()
        self._proc = subprocess.Popen(
            [str(executable), *self.args],
            env=dict(env),
            stdin=subprocess.PIPE if stdin is not None or keep_stdin_open else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            start_new_session=True,  # its own process group: a timeout kills only exls
        )
        self._readers = [
            threading.Thread(target=self._read, args=(name, stream), daemon=True)
            for name, stream in (("stdout", self._proc.stdout), ("stderr", self._proc.stderr))
        ]
        for reader in self._readers:
            reader.start()
        if stdin is not None or keep_stdin_open:
            assert self._proc.stdin is not None
            self._proc.stdin.write(stdin or "")
            self._proc.stdin.flush()
            if not keep_stdin_open:
                self._proc.stdin.close()

    def type(self, line: str) -> None:
        """Write one line to exls's stdin (kept open with keep_stdin_open=True), as a user
        pasting and pressing Enter."""
        assert self._proc.stdin is not None, "start exls with keep_stdin_open=True"
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()

    def interrupt(self) -> None:
        """Ctrl+C: SIGINT to exls."""
        os.kill(self._proc.pid, signal.SIGINT)

    def running(self) -> bool:
        return self._proc.poll() is None

    def count(self, pattern: str | re.Pattern[str], *, stream: str = "stderr") -> int:
        """How many lines of `stream` so far match pattern (search)."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        with self._changed:
            return sum(
                1 for line in self.lines if line.stream == stream and regex.search(line.text)
            )

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _read(self, name: str, stream: IO[str] | None) -> None:
        assert stream is not None
        for raw in stream:
            with self._changed:
                self.lines.append(Line(name, raw.rstrip("\n"), time.time()))
                self._changed.notify_all()
        stream.close()

    def text(self, stream: str) -> str:
        with self._changed:
            return "".join(f"{line.text}\n" for line in self.lines if line.stream == stream)

    def wait_for(
        self,
        pattern: str | re.Pattern[str],
        *,
        stream: str = "stderr",
        timeout: float = 60,
        nth: int = 1,
    ) -> re.Match[str]:
        """The nth line of `stream` matching pattern (search); fails when exls exits first."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                matches = [
                    match
                    for line in self.lines
                    if line.stream == stream and (match := regex.search(line.text))
                ]
                if len(matches) >= nth:
                    return matches[nth - 1]
                remaining = deadline - time.monotonic()
                exited = self._proc.poll() is not None and not any(
                    r.is_alive() for r in self._readers
                )
                if remaining <= 0 or exited:
                    why = "exited" if exited else f"did not print it within {timeout} s"
                    raise AssertionError(
                        f"waiting for {regex.pattern!r} on {stream}: exls {why}.\n"
                        f"--- stdout\n{self.text('stdout')}--- stderr\n{self.text('stderr')}---"
                    )
                self._changed.wait(min(remaining, 0.2))

    def device_code(self, timeout: float = 60) -> tuple[str, str]:
        """(verification_uri, user_code) as exls printed them on stderr."""
        uri = self.wait_for(VISIT, timeout=timeout).group(1)
        code = self.wait_for(ENTER, timeout=timeout).group(1)
        return uri, code

    def finish(self, timeout: float = 60) -> Result:
        """Wait for exls to exit (killing it after timeout, which fails the test)."""
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=max(0.0, self.started + timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            for reader in self._readers:
                reader.join(5)
            raise AssertionError(
                f"exls {' '.join(self.args)} did not finish within {timeout} s.\n"
                f"--- stdout\n{self.text('stdout')}--- stderr\n{self.text('stderr')}---"
            ) from None
        for reader in self._readers:
            reader.join(10)
        seconds = time.monotonic() - self.started
        with self._changed:
            lines = list(self.lines)
        return Result(
            self.args,
            self._proc.returncode,
            self.text("stdout"),
            self.text("stderr"),
            seconds,
            lines,
        )

    def kill(self) -> None:
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)  # exls and the BROWSER it started
            self._proc.wait(timeout=10)


class ExlsCli:
    """Runs the installed exls with the test bed's environment (plus per-call changes)."""

    def __init__(
        self, executable: Path | str, env: Mapping[str, str], *, tmpdir: Path | None = None
    ) -> None:
        self.executable = Path(executable)
        self.base_env = dict(env)
        self.tmpdir = tmpdir  # the TMPDIR exls gets, for leak checks
        self.results: list[Result] = []  # every finished command, for output checks
        self._running: list[ExlsProcess] = []

    def env(self, changes: Mapping[str, str | None] | None = None) -> dict[str, str]:
        env = dict(self.base_env)
        for key, value in (changes or {}).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def start(
        self,
        *args: str,
        env: Mapping[str, str | None] | None = None,
        stdin: str | None = None,
        keep_stdin_open: bool = False,
    ) -> ExlsProcess:
        proc = ExlsProcess(
            self.executable, args, self.env(env), stdin=stdin, keep_stdin_open=keep_stdin_open
        )
        self._running.append(proc)
        return proc

    def finish(self, proc: ExlsProcess, timeout: float = 60) -> Result:
        result = proc.finish(timeout)
        self.results.append(result)
        return result

    def run(
        self,
        *args: str,
        env: Mapping[str, str | None] | None = None,
        stdin: str | None = None,
        timeout: float = 60,
    ) -> Result:
        return self.finish(self.start(*args, env=env, stdin=stdin), timeout)

    def close(self) -> None:
        for proc in self._running:
            proc.kill()


# -- what the Secret Service holds ------------------------------------------------------------


def stored_session(items: Iterable[Any]) -> dict[str, Any] | None:
    """The session exls stored, rebuilt from the Secret Service items (SecretItem).

    Layout (exls_core/session/store.py): a pointer entry `session` naming a slot, and the
    session JSON cut into `session.<slot>.<n>` entries. Only what the pointer names counts.
    """
    by_name = {item.attributes.get("username"): item.secret for item in items}
    pointer_raw = by_name.get("session")
    if pointer_raw is None:
        return None
    pointer = json.loads(pointer_raw)
    pieces = [by_name.get(f"session.{pointer['slot']}.{i}") for i in range(pointer["chunks"])]
    if any(piece is None for piece in pieces):
        raise AssertionError(f"the pointer names missing chunks: {sorted(by_name)}")
    session: dict[str, Any] = json.loads("".join(p for p in pieces if p is not None))
    return session


def secrets_snapshot(items: Iterable[Any]) -> dict[str, str | None]:
    """{entry name: secret} of the items, to compare the keyring before and after."""
    return {item.attributes.get("username", item.path): item.secret for item in items}


# -- timings for the performance issue (recorded, never asserted) -----------------------------


@dataclass
class Timings:
    """Named measurements from the tests; the `e2e_timings` fixture prints and saves them."""

    records: list[dict[str, Any]] = field(default_factory=list)

    def add(self, name: str, **values: float | str) -> None:
        rounded = {k: round(v, 3) if isinstance(v, float) else v for k, v in values.items()}
        self.records.append({"name": name, **rounded})

    def summary(self) -> list[str]:
        return [
            f"{r['name']}: "
            + ", ".join(
                f"{k}={v}{' s' if isinstance(v, float) else ''}"
                for k, v in r.items()
                if k != "name"
            )
            for r in self.records
        ]

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"timings": self.records}, indent=2) + "\n")


# -- whole logins, as a user does them ------------------------------------------------------


@dataclass
class Login:
    """A finished `exls login` and what the browser did for it."""

    result: Result
    browser: LoginResult | None = None
    approved_at: float | None = None  # device code: wall clock when the browser approved


def login_pkce(
    exls: ExlsCli,
    browser: Browser,
    email: str,
    *,
    flow: str | None = "pkce",
    env: Mapping[str, str | None] | None = None,
    login: str | None = None,
    deny: bool = False,
    fresh_session: bool = True,
    timeout: float = 60,
) -> Login:
    """`exls login --auth-flow FLOW --email EMAIL` with the test browser behind BROWSER.

    flow=None leaves the choice to exls (auto): then pass e.g. env={"CI": None,
    "DISPLAY": ":99"}. The browser signs in as `login` (default: the email), or cancels.
    """
    handoff = browser.handoff_env(login=login or email, deny=deny, fresh_session=fresh_session)
    proc = exls.start(*_login_args(flow, email), env={**handoff, **(env or {})})
    try:
        seen = browser.wait_for_login(timeout=timeout)
    except BaseException:
        proc.kill()
        exls.finish(proc)
        raise
    return Login(exls.finish(proc, timeout), seen)


def _login_args(flow: str | None, email: str) -> tuple[str, ...]:
    return ("login", *(("--auth-flow", flow) if flow else ()), "--email", email)


def login_device(
    exls: ExlsCli,
    browser: Browser,
    email: str,
    *,
    flow: str | None = "device_code",
    env: Mapping[str, str | None] | None = None,
    login: str | None = None,
    deny: bool = False,
    email_on_stdin: bool = False,
    proc: ExlsProcess | None = None,
    timeout: float = 60,
) -> Login:
    """`exls login --auth-flow FLOW --email EMAIL` (flow=None: auto): reads the verification
    URI and user code exls shows, approves them in the browser (typing the code) as `login`,
    or cancels (deny=True), and waits for exls. email_on_stdin pipes the address instead
    (`echo EMAIL | exls login`). Pass `proc` to take over a login that is already running."""
    if proc is None:
        if email_on_stdin:
            args = _login_args(flow, email)[:-2]
            proc = exls.start(*args, env=env, stdin=f"{email}\n")
        else:
            proc = exls.start(*_login_args(flow, email), env=env)
    try:
        uri, code = proc.device_code()
        seen = browser.approve_device_code(uri, code, login=login or email, deny=deny)
        approved_at = time.time()
    except BaseException:
        proc.kill()
        exls.finish(proc)
        raise
    return Login(exls.finish(proc, timeout), seen, approved_at)


def pkce_timing(idp: IdpServer, login: Login) -> dict[str, float]:
    """Seconds from the browser's last submit on the provider (login or consent) and from the
    redirect to the loopback, to exls's `Logged in as` (provider event clock = wall clock)."""
    done = login.result.line_time(LOGGED_IN)
    events = [e for e in idp.events() if e["time"] <= done]
    submit = [e for e in events if e["route"] == "submit"][-1]["time"]
    redirect = [e for e in events if e["route"] == "resume"][-1]["time"]
    grant = [e for e in idp.token_grants("authorization_code", succeeded=True) if e["time"] <= done]
    return {
        "submit_to_logged_in": done - submit,
        "redirect_to_logged_in": done - redirect,
        "redirect_to_code_exchange": grant[-1]["time"] - redirect,
        "code_exchange_to_logged_in": done - grant[-1]["time"],
        "exls_total": login.result.seconds,
    }


def device_timing(idp: IdpServer, login: Login) -> dict[str, float]:
    """Seconds from the approval in the browser to exls's `Logged in as`."""
    done = login.result.line_time(LOGGED_IN)
    approved = [e for e in idp.events("device_resume") if e["time"] <= done][-1]["time"]
    grant = [
        e
        for e in idp.token_grants("urn:ietf:params:oauth:grant-type:device_code", succeeded=True)
        if e["time"] <= done
    ][-1]["time"]
    return {
        "approval_to_logged_in": done - approved,
        "approval_to_token_grant": grant - approved,
        "token_grant_to_logged_in": done - grant,
        "exls_total": login.result.seconds,
    }
