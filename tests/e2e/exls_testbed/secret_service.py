"""A private D-Bus session bus with gnome-keyring's Secret Service on it, for one test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SERVICE = "exalsius_cli"
LOGIN_COLLECTION = "/org/freedesktop/secrets/collection/login"

# A session bus without service directories: nothing is auto-started behind our back (with the
# standard ones, a stopped keyring would be respawned by D-Bus activation).
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""

# Variables that would steer a child to another keyring or bus than ours.
_FOREIGN = ("PYTHON_KEYRING_BACKEND", "KEYRING_PROPERTY_KEYRING_PATH", "GNOME_KEYRING_CONTROL")


class SecretServiceError(RuntimeError):
    pass


@dataclass(frozen=True)
class SecretItem:
    path: str
    label: str
    secret: str | None  # None while the collection is locked
    attributes: dict[str, str]


@dataclass
class SecretService:
    """Start with `start()`; `env` is what a subprocess needs to find this Secret Service."""

    root: Path
    dbus_daemon: str
    keyring_daemon: str
    secret_tool: str
    dbus_send: str
    password: str = "pw"
    env: dict[str, str] = field(default_factory=dict)
    _bus: subprocess.Popen[str] | None = None
    _keyring: subprocess.Popen[bytes] | None = None

    @property
    def home(self) -> Path:
        return self.root / "home"

    def start(self, timeout: float = 60) -> None:
        runtime = self.root / "run"
        for directory in (
            self.home / ".local/share",
            self.home / ".config",
            self.home / ".cache",
            runtime,
        ):
            directory.mkdir(parents=True, exist_ok=True)
        runtime.chmod(0o700)
        socket = self.root / "bus"
        config = self.root / "bus.conf"
        config.write_text(BUS_CONFIG.format(socket=socket))
        # --nofork keeps the bus our own child, so teardown can end (and reap) exactly it.
        self._bus = subprocess.Popen(
            [self.dbus_daemon, f"--config-file={config}", "--nofork", "--print-address=1"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self._bus.stdout is not None
        address = self._bus.stdout.readline().strip()  # printed once the bus is listening
        if not address:
            raise SecretServiceError(f"dbus-daemon did not start (exit {self._bus.poll()})")
        # Private HOME/XDG dirs: a fresh keyring file, and no user config leaks into the test.
        self.env = {
            "DBUS_SESSION_BUS_ADDRESS": address,
            "HOME": str(self.home),
            "XDG_DATA_HOME": str(self.home / ".local/share"),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "XDG_RUNTIME_DIR": str(runtime),
        }
        # --foreground: the daemon stays our child; --unlock reads the login password from stdin
        # and creates the (unlocked) login keyring, the default collection keyring writes to.
        self._keyring = subprocess.Popen(
            [self.keyring_daemon, "--foreground", "--unlock", "--components=secrets"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=(self.root / "gnome-keyring.log").open("ab"),
            env=self.subprocess_env(),
        )
        assert self._keyring.stdin is not None
        self._keyring.stdin.write(self.password.encode())
        self._keyring.stdin.close()
        self._wait_for_collection(timeout)

    def _wait_for_collection(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._keyring is not None and self._keyring.poll() is not None:
                raise SecretServiceError(f"gnome-keyring-daemon exited: {self.log()}")
            probe = subprocess.run(
                [
                    self.dbus_send,
                    "--session",
                    "--dest=org.freedesktop.secrets",
                    "--print-reply",
                    "/org/freedesktop/secrets/aliases/default",
                    "org.freedesktop.DBus.Properties.Get",
                    "string:org.freedesktop.Secret.Collection",
                    "string:Locked",
                ],
                env=self.subprocess_env(),
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
            if probe.returncode == 0 and "false" in probe.stdout:
                return
            time.sleep(0.05)
        raise SecretServiceError(
            f"the Secret Service did not come up within {timeout} s: {self.log()}"
        )

    def log(self) -> str:
        path = self.root / "gnome-keyring.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def subprocess_env(self, *overlays: dict[str, str]) -> dict[str, str]:
        """os.environ + this Secret Service + overlays, for subprocess.run(env=...)."""
        env = {key: value for key, value in os.environ.items() if key not in _FOREIGN}
        env.update(self.env)
        for overlay in overlays:
            env.update(overlay)
        return env

    @staticmethod
    def unavailable_env(root: Path) -> dict[str, str]:
        """Env for a session bus that does not exist: the keyring is unavailable, fast."""
        return {"DBUS_SESSION_BUS_ADDRESS": f"unix:path={root / 'no-such-bus'}"}

    # -- inspection -----------------------------------------------------------------------

    def search(self, service: str = SERVICE, **attributes: str) -> list[SecretItem]:
        """Items whose `service` attribute (and the given attributes) match, with their secrets.

        Runs python `secretstorage` in a subprocess (this process is not on the private bus).
        """
        result = subprocess.run(
            [sys.executable, "-c", _SEARCH_SCRIPT, json.dumps({"service": service, **attributes})],
            env=self.subprocess_env(),
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        if result.returncode != 0:
            raise SecretServiceError(f"searching the Secret Service failed: {result.stderr}")
        return [SecretItem(**item) for item in json.loads(result.stdout)]

    def secret_tool_search(self, service: str = SERVICE) -> str:
        """Raw `secret-tool search --all service SERVICE` output (stdout + stderr)."""
        result = subprocess.run(
            [self.secret_tool, "search", "--all", "service", service],
            env=self.subprocess_env(),
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return result.stdout + result.stderr

    # -- failure modes --------------------------------------------------------------------

    def lock(self) -> None:
        """Lock the login collection; with no prompter, unlocking then fails (KeyringLocked)."""
        subprocess.run(
            [
                self.dbus_send,
                "--session",
                "--dest=org.freedesktop.secrets",
                "--print-reply",
                "/org/freedesktop/secrets",
                "org.freedesktop.Secret.Service.Lock",
                f"array:objpath:{LOGIN_COLLECTION}",
            ],
            env=self.subprocess_env(),
            capture_output=True,
            timeout=10,
            check=True,
        )

    def freeze(self) -> None:
        """SIGSTOP the keyring daemon: the Secret Service is there but never answers (a hang)."""
        if self._keyring is not None:
            self._keyring.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self._keyring is not None:
            self._keyring.send_signal(signal.SIGCONT)

    def stop_keyring(self) -> None:
        """Stop gnome-keyring-daemon but keep the bus: no Secret Service on a working bus."""
        proc, self._keyring = self._keyring, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def stop(self) -> None:
        self.stop_keyring()
        bus, self._bus = self._bus, None
        if bus is not None and bus.poll() is None:
            bus.terminate()
            try:
                bus.wait(timeout=5)
            except subprocess.TimeoutExpired:
                bus.kill()
                bus.wait(timeout=5)
        if bus is not None and bus.stdout is not None:
            bus.stdout.close()


_SEARCH_SCRIPT = """
import json, sys
import secretstorage
connection = secretstorage.dbus_init()
items = []
for item in secretstorage.search_items(connection, json.loads(sys.argv[1])):
    items.append({
        "path": item.item_path,
        "label": item.get_label(),
        "secret": None if item.is_locked() else item.get_secret().decode("utf-8", "replace"),
        "attributes": item.get_attributes(),
    })
print(json.dumps(sorted(items, key=lambda i: i["path"])))
"""
