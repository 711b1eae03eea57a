"""Headless Chromium (selenium) that plays the user on the test provider's pages.

Two ways in:
  * the CLI opens the login URL with Python's `webbrowser`; `BROWSER=<handoff script>` makes
    that append the URL to a file, and a watcher thread drives Chromium through it;
  * a test calls `complete_login(url)` / `approve_device_code(uri, code)` itself.

`with browser.elsewhere():` makes Chromium behave like a browser on another machine: its
navigations to http://127.0.0.1:* never reach this machine's listeners (see LoopbackHold).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from selenium import webdriver
from selenium.common.exceptions import (
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

DEFAULT_LOGIN = "alice@example.com"
DEFAULT_PASSWORD = "any-password"  # devInteractions accept any password

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # we run as root in containers
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # small /dev/shm in containers
    "--no-proxy-server",
    # The provider's certificate comes from the per-run test CA; only this browser skips the
    # check (the CLI itself verifies TLS against the CA through REQUESTS_CA_BUNDLE).
    "--ignore-certificate-errors",
    # Loopback only: any other host name fails to resolve instead of reaching the network.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--window-size=1024,900",
)


class BrowserLoginError(RuntimeError):
    """The browser could not get through the provider's pages; artifacts are saved next to it."""


@dataclass
class LoginResult:
    final_url: str
    title: str
    text: str
    steps: list[str] = field(default_factory=list)
    """Pages handled, in order: "user_code", "confirm", "login", "consent", "abort", ..."""
    pages: list[str] = field(default_factory=list)
    """The kind of page each of `steps` was taken on ("login", "consent", "confirm", ...):
    with deny=True it tells on which page the user cancelled."""

    @property
    def query(self) -> dict[str, str]:
        """Query of the final URL (the loopback callback: code/state/iss or error)."""
        from urllib.parse import parse_qsl

        return dict(parse_qsl(urlsplit(self.final_url).query))


class Chromium:
    """One headless Chromium + chromedriver, shared by the tests of a session."""

    def __init__(self, chromium: str, chromedriver: str, profile_dir: Path, log_path: Path) -> None:
        os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager go online
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile_dir}")
        service = Service(executable_path=chromedriver, log_output=str(log_path))
        self.driver = webdriver.Chrome(service=service, options=options)
        self.driver.set_page_load_timeout(30)
        self.lock = threading.Lock()  # WebDriver is not thread-safe

    def quit(self) -> None:
        with contextlib.suppress(WebDriverException):
            self.driver.quit()


# The page a held loopback request gets instead of reaching this machine. An answer, not a
# network error: Chromium auto-reloads error pages, which would start new authorizations.
UNREACHABLE = base64.b64encode(
    b"<!DOCTYPE html><title>127.0.0.1 unreachable</title>"
    b"<p>This address does not reach exls from this browser (test: another machine).</p>"
).decode("ascii")


class LoopbackHold:
    """Keeps Chromium's requests to http://127.0.0.1:* from ever leaving the browser, as if
    it ran on another machine, and records the addresses it was sent to.

    DevTools request interception (Fetch.enable) on a DevTools connection of our own to the
    page: each matching request is paused, recorded and answered by the browser itself (a 502
    page), so the tab ends on the loopback address that "fails to load", exactly what a user
    on another machine would copy. Our own connection, not chromedriver's: while a navigation
    is held, chromedriver answers no command at all (get_log for the performance log included;
    seen with Chromium 156), so the request must be released from outside it.
    """

    PATTERN = "http://127.0.0.1:*"

    def __init__(self, driver: webdriver.Chrome) -> None:
        import websocket  # websocket-client, a dependency of selenium

        address = driver.capabilities["goog:chromeOptions"]["debuggerAddress"]
        with urllib.request.urlopen(f"http://{address}/json", timeout=10) as answer:
            targets = json.load(answer)
        page = next(t for t in targets if t["id"] == driver.current_window_handle)
        self._ws = websocket.create_connection(
            page["webSocketDebuggerUrl"], suppress_origin=True, timeout=10
        )
        self.held: list[str] = []
        self._ids = iter(range(1, 1_000_000))
        self._send("Fetch.enable", patterns=[{"urlPattern": self.PATTERN}])
        self._wait_for_answer()
        self._ws.settimeout(None)
        self._pump = threading.Thread(target=self._run, name="loopback-hold", daemon=True)
        self._pump.start()

    def _send(self, method: str, **params: Any) -> None:
        self._ws.send(json.dumps({"id": next(self._ids), "method": method, "params": params}))

    def _wait_for_answer(self) -> None:
        while "id" not in json.loads(self._ws.recv()):
            pass

    def _run(self) -> None:
        while True:
            try:
                message = json.loads(self._ws.recv())
            except Exception:  # closed by close(): done
                return
            if message.get("method") == "Fetch.requestPaused":
                params = message["params"]
                if params.get("resourceType") == "Document":  # not the favicon that follows
                    self.held.append(params["request"]["url"])
                self._send(
                    "Fetch.fulfillRequest",
                    requestId=params["requestId"],
                    responseCode=502,
                    responseHeaders=[{"name": "Content-Type", "value": "text/html"}],
                    body=UNREACHABLE,
                )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._send("Fetch.disable")
        self._ws.close()
        self._pump.join(10)


class Browser:
    """Per-test facade over the shared Chromium; see the module docstring."""

    def __init__(self, chromium: Chromium, workdir: Path) -> None:
        self._chromium = chromium
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self._urls_path = workdir / "browser-urls.txt"
        self._script_path = workdir / "exls-test-browser"
        self._results: queue.Queue[LoginResult | BaseException] = queue.Queue()
        self._handoff_options: dict[str, Any] = {}
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.received_urls: list[str] = []

    @property
    def driver(self) -> webdriver.Chrome:
        return self._chromium.driver

    @contextlib.contextmanager
    def elsewhere(self) -> Iterator[LoopbackHold]:
        """Chromium as a browser on another machine: the loopback redirect never arrives;
        `.held` lists the addresses it ended on (what the user would copy and paste)."""
        with self._chromium.lock:
            hold = LoopbackHold(self.driver)
        try:
            yield hold
        finally:
            hold.close()

    def sign_in_elsewhere(self, url: str, login: str = DEFAULT_LOGIN, **options: Any) -> str:
        """Sign in on `url` from "another machine" and return the address the browser ended
        on (the loopback callback that did not load)."""
        with self.elsewhere() as hold:
            final = self.complete_login(url, login, **options).final_url
        if len(hold.held) != 1 or final != hold.held[0]:
            raise BrowserLoginError(f"expected one held redirect, got {hold.held} ({final})")
        return hold.held[0]

    # -- BROWSER handoff ------------------------------------------------------------------

    def handoff_command(
        self,
        login: str = DEFAULT_LOGIN,
        *,
        password: str = DEFAULT_PASSWORD,
        deny: bool = False,
        fresh_session: bool = True,
        act: bool = True,
    ) -> str:
        """Path of a script to put in BROWSER; each URL it receives is logged in as `login`.

        deny=True cancels on the provider's first page instead (-> error=access_denied).
        act=False only records URLs (a "browser that never opens"); see received_urls.
        Results arrive in wait_for_login(). Calling again changes the options for later URLs.
        """
        self._handoff_options = {
            "login": login,
            "password": password,
            "deny": deny,
            "fresh_session": fresh_session,
            "act": act,
        }
        if not self._script_path.exists():
            self._urls_path.touch()
            # Python's webbrowser runs `<BROWSER> <url>` (no "%s" in the value) and treats exit 0
            # as "opened". The path must not contain spaces (webbrowser splits on them).
            self._script_path.write_text(
                "#!/bin/sh\n"
                "# exls e2e BROWSER handoff: record the URL; the test's Chromium opens it.\n"
                f"printf '%s\\n' \"$1\" >> '{self._urls_path}'\n"
            )
            self._script_path.chmod(0o755)
        if self._watcher is None:
            self._watcher = threading.Thread(
                target=self._watch, name="browser-handoff", daemon=True
            )
            self._watcher.start()
        return str(self._script_path)

    def handoff_env(self, **options: Any) -> dict[str, str]:
        """{"BROWSER": handoff_command(**options)} to merge into the CLI's environment."""
        return {"BROWSER": self.handoff_command(**options)}

    def wait_for_login(self, timeout: float = 60) -> LoginResult:
        """Result of the next URL the handoff drove; raises what the browser thread raised."""
        try:
            outcome = self._results.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(
                f"no login URL handled within {timeout} s (received: {self.received_urls})"
            ) from None
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def wait_for_url(self, timeout: float = 60) -> str:
        """Wait until the handoff received a URL (useful with act=False) and return the latest."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.received_urls:
                return self.received_urls[-1]
            time.sleep(0.05)
        raise TimeoutError(f"BROWSER was not invoked within {timeout} s")

    def _watch(self) -> None:
        seen = 0
        while not self._stop.is_set():
            # Complete lines only: the handoff script may be mid-write.
            lines = [line for line in self._urls_path.read_text().split("\n")[:-1] if line.strip()]
            for url in lines[seen:]:
                self.received_urls.append(url)
                options = dict(self._handoff_options)
                if not options.pop("act"):
                    continue
                try:
                    self._results.put(self.complete_login(url, **options))
                except BaseException as exc:  # handed to the test thread by wait_for_login
                    self._results.put(exc)
            seen = len(lines)
            self._stop.wait(0.05)

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=120)  # past complete_login's own timeouts

    # -- driving the provider's pages -----------------------------------------------------

    def complete_login(
        self,
        url: str,
        login: str = DEFAULT_LOGIN,
        *,
        password: str = DEFAULT_PASSWORD,
        deny: bool = False,
        fresh_session: bool = True,
        timeout: float = 60,
    ) -> LoginResult:
        """Open an authorization URL, log in and consent (or cancel), until the browser leaves
        the provider (the redirect to the loopback callback). The final URL is in the result."""
        return self._drive(
            url,
            login=login,
            password=password,
            deny=deny,
            user_code=None,
            fresh_session=fresh_session,
            timeout=timeout,
        )

    def approve_device_code(
        self,
        verification_uri: str,
        user_code: str | None = None,
        login: str = DEFAULT_LOGIN,
        *,
        password: str = DEFAULT_PASSWORD,
        deny: bool = False,
        fresh_session: bool = True,
        timeout: float = 60,
    ) -> LoginResult:
        """Open the verification URI, enter the user code (None: verification_uri_complete has
        it), confirm, log in and consent, up to the success page. deny=True aborts at confirm."""
        return self._drive(
            verification_uri,
            login=login,
            password=password,
            deny=deny,
            user_code=user_code,
            fresh_session=fresh_session,
            timeout=timeout,
        )

    def screenshot(self, name: str = "screenshot") -> Path:
        path = self.workdir / f"{name}.png"
        with self._chromium.lock:
            self.driver.save_screenshot(str(path))
        return path

    def _drive(
        self,
        url: str,
        *,
        login: str,
        password: str,
        deny: bool,
        user_code: str | None,
        fresh_session: bool,
        timeout: float,
    ) -> LoginResult:
        with self._chromium.lock:
            driver = self.driver
            if fresh_session:  # no provider session left over from an earlier login
                driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
            origin = _provider_origin(url)
            steps: list[str] = []
            pages: list[str] = []  # the kind of page each step was taken on
            code_sent = False
            driver.get(url)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    if _origin(driver.current_url) != origin:
                        return self._result([*steps, "left-provider"], pages)
                    page = self._page_kind()
                    if page == "success":
                        return self._result([*steps, "success"], pages)
                    if page == "error":
                        return self._result([*steps, "error"], pages)
                    if page == "user_code":
                        if code_sent:  # shown again: wrong/expired code, or after an abort
                            return self._result([*steps, "user_code-again"], pages)
                        field_ = driver.find_element(By.NAME, "user_code")
                        if user_code is not None:
                            field_.clear()
                            field_.send_keys(user_code)
                        code_sent = True
                        steps.append("user_code")
                        pages.append(page)
                        self._submit(
                            driver.find_element(
                                By.CSS_SELECTOR, 'button[form="op.deviceInputForm"]'
                            )
                        )
                    elif page == "confirm":
                        code_sent = True
                        if deny:
                            steps.append("abort")
                            pages.append(page)
                            self._submit(
                                driver.find_element(By.CSS_SELECTOR, 'button[name="abort"]')
                            )
                        else:
                            steps.append("confirm")
                            pages.append(page)
                            self._submit(
                                driver.find_element(
                                    By.CSS_SELECTOR,
                                    'button[form="op.deviceConfirmForm"]:not([name])',
                                )
                            )
                    elif page in ("login", "consent") and deny:
                        steps.append("abort")
                        pages.append(page)
                        self._submit(driver.find_element(By.CSS_SELECTOR, 'a[href*="/abort"]'))
                    elif page == "login":
                        steps.append("login")
                        pages.append(page)
                        name_field = driver.find_element(By.NAME, "login")
                        name_field.clear()
                        name_field.send_keys(login)
                        driver.find_element(By.NAME, "password").send_keys(password)
                        self._submit(
                            driver.find_element(By.CSS_SELECTOR, 'form button[type="submit"]')
                        )
                    elif page == "consent":
                        steps.append("consent")
                        pages.append(page)
                        self._submit(
                            driver.find_element(By.CSS_SELECTOR, 'form button[type="submit"]')
                        )
                    else:
                        time.sleep(0.05)  # still loading or an unknown page: look again
                except (StaleElementReferenceException, TimeoutException):
                    continue  # the page changed under us; classify again
                except WebDriverException as exc:
                    # Chromium's flavour of a stale element, raised as an "unknown error"
                    # when the document is replaced between finding a node and using it.
                    if "does not belong to the document" not in str(exc):
                        raise
                    continue
            self._save_artifacts("browser-timeout")
            raise BrowserLoginError(
                f"browser stuck at {driver.current_url!r} after {steps} ({timeout} s); "
                f"see {self.workdir}/browser-timeout.png/.html"
            )

    def _page_kind(self) -> str:
        driver = self.driver
        title = driver.title

        def has(selector: str) -> bool:
            return bool(driver.find_elements(By.CSS_SELECTOR, selector))

        if title == "Sign-in Success":
            return "success"
        if has("pre#error") or title.startswith("oops"):
            return "error"
        if has('[id="op.deviceConfirmForm"]'):
            return "confirm"
        if has('[id="op.deviceInputForm"]'):
            return "user_code"
        if has('input[name="prompt"][value="login"]'):
            return "login"
        if has('input[name="prompt"][value="consent"]'):
            return "consent"
        return "unknown"

    def _submit(self, element: WebElement) -> None:
        """Click and wait until the next document replaced this one."""
        page = self.driver.find_element(By.TAG_NAME, "html")
        element.click()
        WebDriverWait(self.driver, 15).until(expected_conditions.staleness_of(page))

    def _result(self, steps: list[str], pages: list[str] | None = None) -> LoginResult:
        driver = self.driver
        try:
            text = driver.find_element(By.TAG_NAME, "body").text
        except WebDriverException:
            text = ""
        return LoginResult(
            final_url=driver.current_url,
            title=driver.title,
            text=text,
            steps=steps,
            pages=list(pages or []),
        )

    def _save_artifacts(self, name: str) -> None:
        try:
            self.driver.save_screenshot(str(self.workdir / f"{name}.png"))
            (self.workdir / f"{name}.html").write_text(self.driver.page_source)
        except WebDriverException:
            pass


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _provider_origin(url: str) -> str:
    """The origin of the provider's pages for a URL exls handed the browser. On Linux that is
    its listener's ``/start`` address (issue 23: the authorization URL stays off the command
    line), which redirects this user's browser there: ask it where, as the browser will."""
    parts = urlsplit(url)
    if parts.hostname != "127.0.0.1" or parts.path != "/start":
        return _origin(url)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)
    try:
        opener.open(url, timeout=30).close()
    except urllib.error.HTTPError as answer:
        if answer.code == 303 and answer.headers.get("Location"):
            return _origin(answer.headers["Location"])
        raise
    raise BrowserLoginError(f"{url} did not redirect to the provider")
