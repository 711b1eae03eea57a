"""The demo behind `nox -s demo`: a real exls login against a local identity provider.

It starts node-oidc-provider on 127.0.0.1 (TLS with a throw-away CA) and a private Secret
Service (so the demo never touches your own keyring), then runs the real `exls` commands in a
pseudo-terminal, so you see exactly what a user sees: the browser flow, the device code with
its QR code and countdown, `auth status`, `auth token`, `logout`.

By default a headless Chromium plays the user (it signs in as demo@example.com: the provider
accepts any login and password). `--interactive` leaves the signing in to you.
"""

from __future__ import annotations

import argparse
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "e2e"))

from exls_testbed.idp import IdpServer, ensure_node_modules, make_signing_key, make_tls_files
from exls_testbed.secret_service import SecretService

EMAIL = "demo@example.com"
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
COMPLETE_LINK = re.compile(r"Or open this link, which includes the code: (\S+)")


def say(text: str) -> None:
    print(f"\n\033[1;36m[demo]\033[0m {text}", flush=True)


def need(tool: str) -> str:
    found = shutil.which(tool)
    if not found:
        raise SystemExit(f"{tool} is missing: run `bash scripts/system-deps.sh` (as root).")
    return found


def run_in_terminal(argv: list[str], env: dict[str, str], on_output: Callable[[str], None]) -> int:
    """Run a command in a pseudo-terminal, echoing its screen; returns the exit code."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(argv[0], argv, env)  # noqa: S606
    screen = ""
    while True:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096).decode(errors="replace")
        except OSError:
            break
        if not chunk:
            break
        sys.stdout.write(chunk)
        sys.stdout.flush()
        screen += ANSI.sub("", chunk)
        on_output(screen)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status)


class Robot:
    """Headless Chromium playing the user; see tests/e2e/exls_testbed/browser.py."""

    def __init__(self, workdir: Path) -> None:
        from exls_testbed.browser import Browser, Chromium

        workdir.mkdir(parents=True, exist_ok=True)
        self.chromium = Chromium(
            need("chromium"), need("chromedriver"), workdir / "profile", workdir / "driver.log"
        )
        self.browser = Browser(self.chromium, workdir / "browser")
        self.approved: set[str] = set()

    def browser_env(self) -> dict[str, str]:
        return self.browser.handoff_env(login=EMAIL)

    def watch_for_device_code(self, screen: str) -> None:
        match = COMPLETE_LINK.search(screen)
        if match and match.group(1) not in self.approved:
            link = match.group(1)
            self.approved.add(link)

            def approve() -> None:
                time.sleep(2)  # give the viewer a moment to see the code
                say(f"the robot opens the link on 'another device' and signs in as {EMAIL}")
                self.browser.approve_device_code(link, login=EMAIL)

            threading.Thread(target=approve, daemon=True).start()

    def close(self) -> None:
        self.browser.close()
        self.chromium.quit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactive", action="store_true", help="sign in yourself")
    args = parser.parse_args()

    exls = shutil.which("exls") or str(Path(sys.executable).parent / "exls")
    work = Path(tempfile.mkdtemp(prefix="exls-demo-"))
    say("starting the local identity provider (node-oidc-provider) on 127.0.0.1...")
    ensure_node_modules(need("npm"))
    idp = IdpServer(
        node=need("node"),
        tls=make_tls_files(work / "tls"),
        workdir=work / "idp",
        signing_key=make_signing_key(work / "signing-key.json"),
    )
    idp.env.update(IDP_DEVICE_INTERVAL="2")
    idp.start()
    keyring = SecretService(
        root=work / "keyring",
        dbus_daemon=need("dbus-daemon"),
        keyring_daemon=need("gnome-keyring-daemon"),
        secret_tool=need("secret-tool"),
        dbus_send=need("dbus-send"),
    )
    keyring.start()
    robot = None if args.interactive else Robot(work / "robot")
    try:
        env = keyring.subprocess_env(idp.exls_env())
        env.pop("CI", None)
        env["TERM"] = os.environ.get("TERM", "xterm-256color")
        say(f"provider: {idp.issuer}   keyring: a private GNOME Keyring   config: {work}")
        if args.interactive:
            say(
                "On the provider's login page any login and any password work: type an email "
                f"address such as {EMAIL}. Your browser will warn about the demo's self-signed "
                "certificate for 127.0.0.1: that is expected here."
            )
            steps = [[exls, "login"], [exls, "auth", "status"], [exls, "logout"]]
        else:
            assert robot is not None
            env.update(robot.browser_env())
            steps = [
                [exls, "auth", "flows"],
                [exls, "login", "--email", EMAIL],
                [exls, "auth", "status"],
                [exls, "logout"],
                [exls, "login", "--auth-flow", "device_code", "--email", EMAIL],
                [exls, "auth", "status", "--json"],
                [exls, "logout"],
            ]
        for argv in steps:
            say("$ " + " ".join(["exls", *argv[1:]]))
            on_output = robot.watch_for_device_code if robot else (lambda _screen: None)
            code = run_in_terminal(argv, env, on_output)
            if code not in (0,) and argv[1:] != ["auth", "status"]:
                say(f"exited with {code}")
                return code
        say("secret-tool search --all service exalsius_cli (after logout: nothing left)")
        print(keyring.secret_tool_search() or "(no items)")
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        if robot:
            robot.close()
        keyring.stop()
        idp.close()
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    sys.exit(main())
