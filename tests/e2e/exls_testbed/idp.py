"""The local OpenID provider (tests/idp/server.mjs) as a subprocess, plus a test CA for it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

IDP_DIR = Path(__file__).resolve().parents[2] / "idp"
CLIENT_ID = "exls-test-client"
# Workload identity clients of server.mjs (issue 22).
WORKLOAD_CLIENT_ID = "exls-ci-client"
WORKLOAD_SECRET_CLIENT_ID = "exls-ci-confidential"
WORKLOAD_CLIENT_SECRET = "exls-ci-secret-for-tests-only-0123456789"
WORKLOAD_ASSERTION_CLIENT_ID = "exls-ci-federated"
INTROSPECTOR = ("exls-test-introspector", "exls-introspector-secret-for-tests-only")
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
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


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def make_signing_key(path: Path) -> Path:
    """The provider's RS256 signing key as a private JWK, made once per test run.

    Generating a 2048-bit key takes node seconds on a loaded machine; and one key for the whole
    run means a restarted provider still validates what the CLI cached (its JWKS)."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key))
    jwk.update(kid=f"test-{uuid.uuid4()}", alg="RS256", use="sig")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jwk))
    path.chmod(0o600)
    return path


START_LIMIT = 300.0  # seconds a start may take while node keeps working (a slow machine)
STUCK_AFTER = 30.0  # seconds without node using any CPU, not serving yet: it is stuck


@dataclass
class IdpServer:
    """A running tests/idp/server.mjs. Start with `start()`, stop with `stop()`.

    The listening socket is made here, once, and handed to node (--listen-fd): a restart
    serves the same issuer on the same port, which nobody else could take in between.
    """

    node: str
    tls: TlsFiles
    workdir: Path
    signing_key: Path
    client_id: str = CLIENT_ID
    env: dict[str, str] = field(default_factory=dict)
    """Extra IDP_* environment for the server (e.g. IDP_ACCESS_TOKEN_TTL); see server.mjs."""
    issuer: str = ""
    port: int = 0
    _proc: subprocess.Popen[bytes] | None = None
    _socket: socket.socket | None = None

    @property
    def ca_path(self) -> Path:
        return self.tls.ca_path

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path:
        return self.workdir / "idp.log"

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the provider and wait until it answers discovery over HTTPS."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._socket is None:
            self._socket = socket.create_server(("127.0.0.1", 0), backlog=128)
            self.port = self._socket.getsockname()[1]
        # server.mjs serves the provider under IDP_ISSUER_PATH (e.g. /realms/acme) when set
        self.issuer = f"https://127.0.0.1:{self.port}{self.env.get('IDP_ISSUER_PATH', '')}"
        stdout_path = self.workdir / "idp.stdout"
        # NODE_EXTRA_CA_CERTS: the provider fetches a stand-in CI issuer's keys over TLS.
        env = {**os.environ, "NODE_EXTRA_CA_CERTS": str(self.tls.ca_path), **self.env}
        env.pop("NODE_OPTIONS", None)  # a debugger/inspector flag from the caller breaks startup
        fd = self._socket.fileno()
        with stdout_path.open("wb") as out, self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    self.node,
                    "server.mjs",
                    "--cert",
                    str(self.tls.cert_path),
                    "--key",
                    str(self.tls.key_path),
                    "--signing-key",
                    str(self.signing_key),
                    "--listen-fd",
                    str(fd),
                    "--host",
                    "127.0.0.1",
                ],
                cwd=IDP_DIR,
                stdin=subprocess.DEVNULL,
                stdout=out,  # a file, not a pipe: nothing has to drain it
                stderr=log,
                env=env,
                pass_fds=(fd,),
            )
        try:
            self._wait_until_serving(self._proc)
        except IdpError:
            self.stop()
            raise

    def _wait_until_serving(self, proc: subprocess.Popen[bytes]) -> None:
        """Probe discovery until it answers. A node that keeps using CPU is slow and is given
        START_LIMIT; one that used none for STUCK_AFTER seconds is stuck: fail with its state."""
        started = time.monotonic()
        progress_at, cpu = started, _cpu_seconds(proc.pid)
        while True:
            if proc.poll() is not None:
                raise IdpError(f"the test IdP exited with {proc.returncode}:\n{self._state(proc)}")
            try:
                if self.discovery(timeout=5)["issuer"] == self.issuer:
                    return
            except (requests.RequestException, ValueError, KeyError):
                pass  # not serving yet
            now, used = time.monotonic(), _cpu_seconds(proc.pid)
            if used > cpu:
                progress_at, cpu = now, used
            if now - progress_at > STUCK_AFTER:
                raise IdpError(
                    f"the test IdP is stuck: not serving after {now - started:.0f} s, and it used "
                    f"no CPU in the last {STUCK_AFTER:.0f} s:\n{self._state(proc)}"
                )
            if now - started > START_LIMIT:
                raise IdpError(
                    f"the test IdP is too slow: still starting after {START_LIMIT:.0f} s "
                    f"({cpu:.1f} s of CPU used):\n{self._state(proc)}"
                )
            time.sleep(0.1)

    def _state(self, proc: subprocess.Popen[bytes]) -> str:
        """What node was doing: its process state, stdout and stderr (the log)."""
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            state = next(line for line in status.splitlines() if line.startswith("State:"))
            wchan = Path(f"/proc/{proc.pid}/wchan").read_text()
            where = f"{state}, waiting in {wchan or '-'}, CPU {_cpu_seconds(proc.pid):.1f} s"
        except (OSError, StopIteration):
            where = f"exit code {proc.poll()}"
        stdout = (self.workdir / "idp.stdout").read_text(errors="replace")
        return f"node {proc.pid}: {where}\n--- stdout\n{stdout}\n--- stderr\n{self.log()}"

    def stop(self) -> None:
        """Stop node (the listening socket stays, for a restart); see close()."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.wait()

    def close(self) -> None:
        """Stop node and release the port."""
        self.stop()
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def restart(self, **idp_env: str | int) -> None:
        """Restart on the same socket, e.g. `restart(IDP_ACCESS_TOKEN_TTL=5)`; tokens are lost.

        Only on a provider of your own (the `private_idp` fixture): the shared one keeps its
        start-up settings for every test (use configure() there)."""
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

    def discovery(self, timeout: float = 30) -> dict[str, Any]:
        with self.session() as http:
            response = http.get(self.url("/.well-known/openid-configuration"), timeout=timeout)
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
            response = http.request(method, self.url(f"/__test__/{action}"), json=body, timeout=30)
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

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662 introspection, as a resource server would ask: {"active", "sub", ...}."""
        client_id, secret = INTROSPECTOR
        with self.session() as http:
            response = http.post(
                self.url("/token/introspection"),
                data={"token": token, "client_id": client_id, "client_secret": secret},
                timeout=30,
            )
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def lookup(self, token: str) -> dict[str, Any]:
        """Whether the provider still knows a token.

        {"kind": "RefreshToken"|"AccessToken"|None, "active": bool, "consumed", "expired", ...}
        """
        result: dict[str, Any] = self._admin("POST", "lookup", {"token": token})
        return result
