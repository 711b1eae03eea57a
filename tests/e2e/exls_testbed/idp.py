"""The local OpenID provider (tests/idp/server.mjs) as a subprocess, plus a test CA for it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

IDP_DIR = Path(__file__).resolve().parents[2] / "idp"
CLIENT_ID = "exls-test-client"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


class IdpError(RuntimeError):
    """The provider could not be installed or started; the message carries its log."""


@dataclass(frozen=True)
class TlsFiles:
    ca_path: Path
    cert_path: Path
    key_path: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """A throw-away CA and a server certificate for 127.0.0.1 and localhost (trustme)."""
    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    files = TlsFiles(
        directory / "ca.pem", directory / "server-cert.pem", directory / "server-key.pem"
    )
    ca.cert_pem.write_to_path(str(files.ca_path))
    # Leaf first, then the chain, as Node's tls expects in `cert`.
    files.cert_path.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(files.key_path))
    return files


def ensure_node_modules(npm: str, idp_dir: Path = IDP_DIR, timeout: float = 300) -> None:
    """`npm ci` once, when node_modules is missing or does not hold the pinned oidc-provider."""
    pinned = json.loads((idp_dir / "package.json").read_text())["dependencies"]["oidc-provider"]
    installed = idp_dir / "node_modules" / "oidc-provider" / "package.json"
    if installed.exists() and json.loads(installed.read_text()).get("version") == pinned:
        return
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=idp_dir,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise IdpError(
            f"`npm ci` in {idp_dir} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )


@dataclass
class IdpServer:
    """A running tests/idp/server.mjs. Start with `start()`, stop with `stop()`."""

    node: str
    tls: TlsFiles
    workdir: Path
    client_id: str = CLIENT_ID
    env: dict[str, str] = field(default_factory=dict)
    """Extra IDP_* environment for the server (e.g. IDP_ACCESS_TOKEN_TTL); see server.mjs."""
    issuer: str = ""
    port: int = 0
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def ca_path(self) -> Path:
        return self.tls.ca_path

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        return self.workdir / "idp.log"

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, timeout: float = 30) -> None:
        """Start the provider (on the previous port after a restart) and wait until it serves."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        ready_path = self.workdir / "idp.stdout"
        ready_path.write_bytes(b"")
        env = {**os.environ, **self.env}
        env.pop(
            "NODE_OPTIONS", None
        )  # a debugger/inspector flag from the caller would break startup
        with ready_path.open("wb") as out, self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    self.node,
                    "server.mjs",
                    "--cert",
                    str(self.tls.cert_path),
                    "--key",
                    str(self.tls.key_path),
                    "--port",
                    str(self.port),
                    "--host",
                    "127.0.0.1",
                ],
                cwd=IDP_DIR,
                stdin=subprocess.DEVNULL,
                stdout=out,  # a file, not a pipe: nothing has to drain it
                stderr=log,
                env=env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = ready_path.read_text().split("\n", 1)[0]
            if line.endswith("}"):
                info = json.loads(line)
                self.issuer, self.port = info["issuer"], int(info["port"])
                break
            if self._proc.poll() is not None:
                raise IdpError(f"the test IdP exited with {self._proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        else:
            self.stop()
            raise IdpError(
                f"the test IdP did not report readiness within {timeout} s:\n{self.log()}"
            )
        self.discovery()  # proves TLS + routing before any test runs

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def restart(self, **idp_env: str | int) -> None:
        """Restart on the same port, e.g. `restart(IDP_ACCESS_TOKEN_TTL=5)`; all tokens are lost."""
        self.stop()
        self.env.update({key: str(value) for key, value in idp_env.items()})
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- protocol helpers -----------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self.issuer.rstrip('/')}{path}"  # an issuer may end with "/" (IDP_ISSUER_PATH)

    def session(self) -> requests.Session:
        """A requests session that trusts the test CA (and ignores proxy variables)."""
        http = requests.Session()
        http.verify = str(self.ca_path)
        http.trust_env = False
        return http

    def discovery(self) -> dict[str, Any]:
        with self.session() as http:
            response = http.get(self.url("/.well-known/openid-configuration"), timeout=10)
        response.raise_for_status()
        doc: dict[str, Any] = response.json()
        return doc

    def exls_env(self, audience: str = "") -> dict[str, str]:
        """Environment that points the exls CLI at this provider (merge into a subprocess env)."""
        ca = str(self.ca_path)
        return {
            "EXLS_AUTH_ISSUER": self.issuer,
            "EXLS_AUTH_CLIENT_ID": self.client_id,
            "EXLS_AUTH_AUDIENCE": audience,  # empty: send no audience parameter
            "EXLS_AUTH_CALLBACK_PORTS": "0",
            "REQUESTS_CA_BUNDLE": ca,
            "SSL_CERT_FILE": ca,  # for anything not using requests (httpx, urllib)
            # Loopback only: a proxy from the caller's environment must not be used.
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }

    # -- test admin API (see server.mjs) --------------------------------------------------

    def _admin(self, method: str, action: str, body: dict[str, Any] | None = None) -> Any:
        with self.session() as http:
            response = http.request(method, self.url(f"/__test__/{action}"), json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def events(self, route: str | None = None, **params: str) -> list[dict[str, Any]]:
        """Recorded requests, oldest first, optionally filtered by route and exact param values.

        route: "authorization", "token", "device_authorization", "revocation", "userinfo",
        "code_verification", "interaction", "resume", ... Each event has: seq, time, route,
        method, path, params (query + form), status, error, issued (token names in the
        response), and scope (token), revoked_kind (revocation), location (authorization).
        """
        found: list[dict[str, Any]] = self._admin("GET", "events")
        if route is not None:
            found = [event for event in found if event["route"] == route]
        for key, value in params.items():
            found = [event for event in found if event["params"].get(key) == value]
        return found

    def token_grants(
        self, grant_type: str | None = None, *, succeeded: bool | None = None
    ) -> list[dict[str, Any]]:
        """Token endpoint requests, e.g. `token_grants("refresh_token", succeeded=True)`."""
        grants = self.events("token")
        if grant_type is not None:
            grants = [event for event in grants if event["params"].get("grant_type") == grant_type]
        if succeeded is not None:
            grants = [event for event in grants if (event["status"] == 200) == succeeded]
        return grants

    def reset(self) -> None:
        """Forget recorded events and restore the startup settings (tokens stay valid)."""
        self._admin("POST", "reset")

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change runtime settings until the next reset, e.g. `configure(access_token_ttl=5)`.

        Keys: access_token_ttl, id_token_ttl, refresh_token_ttl, device_code_ttl,
        device_interval, enforce_slow_down, force_slow_down, skip_consent, inject,
        drop_id_token (grant types answered without an ID token), issue_refresh_token,
        discovery_patch ({key: value or None to remove}), oauth_metadata (serve RFC 8414).
        `inject` is a list of faults, consumed in order, like
        {"route": "token", "grant_type": "refresh_token", "status": 400, "error": "invalid_grant",
        "times": 1} or {"route": "token", "delay_ms": 3000}.
        """
        result: dict[str, Any] = self._admin("POST", "config", settings)
        return result

    def lookup(self, token: str) -> dict[str, Any]:
        """Whether the provider still knows a token.

        {"kind": "RefreshToken"|"AccessToken"|None, "active": bool, "consumed", "expired", ...}
        """
        result: dict[str, Any] = self._admin("POST", "lookup", {"token": token})
        return result
