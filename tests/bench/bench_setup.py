"""The keyring-backed cases of the benchmark: a real Secret Service with a stored session.

`exls auth token` is measured against the bare keyring read it cannot avoid. That read pays
keyring's own backend discovery: importing every backend, checking their priorities and an
entry-point scan of the group keyring.backends (importlib_metadata, on Python 3.11) that grows
with the installed distributions. exls adds no scan of its own on this path, so the 300
unrelated distributions are compared with what they cost the bare read in the same run.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from exls_testbed.secret_service import SecretService  # noqa: E402

STORE_SESSION = """
import time
from exls_core.session import Session, SessionStore
SessionStore().save(Session(
    issuer="https://exalsius.eu.auth0.com/", client_id="kSbRc9MOnuMKMVLzhZYBo3xkTtk2KK7B",
    access_token="bench-access-token-" + "x" * 800, expires_at=time.time() + 86400,
    refresh_token="bench-refresh", id_token="bench-id-" + "y" * 1200,
    scopes=("openid", "profile", "email", "offline_access"), flow="device_code",
    subject="bench", email="bench@example.com", logged_in_at=time.time()))
"""
BARE_READ = "import keyring; keyring.get_password('exalsius_cli', 'session')"
STORE_IN_KERNEL = STORE_SESSION.replace(
    "from exls_core.session import Session, SessionStore",
    "from exls_core.session import Session\n"
    "from exls_core.session.kernel_store import KernelSessionStore as SessionStore",
)
STORE_IN_AGENT = STORE_SESSION.replace(
    "from exls_core.session import Session, SessionStore",
    "from exls_core.config import load_settings\n"
    "from exls_core.session import Session\n"
    "from exls_core.session.agent_store import AgentSessionStore\n"
    "SessionStore = lambda: AgentSessionStore(load_settings())",
)
STOP_AGENT = (
    "from exls_core.config import load_settings\n"
    "from exls_core.session.agent_store import AgentSessionStore\n"
    "from exls_core.session.agent_store import AgentTokenCache\n"
    "AgentTokenCache().drop()\n"
    "AgentSessionStore(load_settings()).clear()  # it then holds nothing and exits"
)
# gh 2.23 (Debian's) keeps its token in hosts.yml; `gh auth token` reads it without network.
GH_HOSTS = "github.com:\n    oauth_token: gho_bench{}\n    user: bench\n    git_protocol: https\n"


def start_secret_service(root: Path) -> SecretService:
    def tool(name: str) -> str:
        found = shutil.which(name)
        if not found:
            raise SystemExit(f"{name} not found: run scripts/system-deps.sh (as root) first")
        return found

    service = SecretService(
        root=root,
        dbus_daemon=tool("dbus-daemon"),
        keyring_daemon=tool("gnome-keyring-daemon"),
        secret_tool=tool("secret-tool"),
        dbus_send=tool("dbus-send"),
    )
    service.start()
    return service


def token_cases(
    exls: str, env: dict[str, str], home: Path
) -> tuple[list, list, Callable[[], None]]:  # type: ignore[type-arg]
    """Cases and budgets for `exls auth token` against the bare keyring read it cannot avoid."""
    from bench import Budget, Case, make_dummy_distributions

    service = start_secret_service(home / "secret-service")
    full = service.subprocess_env(env, service.env)
    # No token cache unless a case names one: in a container sharing the host's users the
    # default would be the exls agent as the cache, answering for the keyring store.
    full["EXLS_TOKEN_CACHE"] = "0"
    subprocess.run([sys.executable, "-c", STORE_SESSION], env=full, check=True, timeout=60)
    check = subprocess.run([exls, "auth", "token"], env=full, capture_output=True, text=True)
    if check.returncode != 0 or not check.stdout.startswith("bench-access-token-"):
        raise SystemExit(f"exls auth token failed in the bench setup: {check.stderr}")

    dummies = home / "dummies"
    dummies.mkdir()
    make_dummy_distributions(dummies, 300)
    crowded = dict(full, PYTHONPATH=str(dummies))

    # The store path (what a cache miss costs) is measured with the token cache off.
    store_only = dict(full, EXLS_TOKEN_CACHE="0")
    crowded_store_only = dict(crowded, EXLS_TOKEN_CACHE="0")
    bare = Case(
        "python: bare keyring read (SecretService)", [sys.executable, "-c", BARE_READ], full
    )
    bare300 = Case(
        "python: bare keyring read, 300 unrelated distributions",
        [sys.executable, "-c", BARE_READ],
        crowded,
    )
    token = Case(
        "exls auth token (valid token, SecretService, no cache)",
        [exls, "auth", "token"],
        store_only,
    )
    token300 = Case(
        "exls auth token, 300 unrelated distributions, no cache",
        [exls, "auth", "token"],
        crowded_store_only,
    )
    version = Case("exls --version (same environment)", [exls, "--version"], full)
    version300 = Case("exls --version, 300 unrelated distributions", [exls, "--version"], crowded)
    flows = Case("exls auth flows (scans entry points)", [exls, "auth", "flows"], full)
    flows300 = Case(
        "exls auth flows, 300 unrelated distributions", [exls, "auth", "flows"], crowded
    )
    cases = [bare, bare300, token, token300, version, version300, flows, flows300]
    hot_cases, hot_budgets, stop_agent = token_cache_cases(exls, full, home)
    budgets = [
        Budget("auth token <= 1.2x bare keyring read", token.name, bare.name, 1.2),
        Budget(
            "auth token <= 1.2x bare read, both with 300 dists",
            token300.name,
            bare300.name,
            1.2,
        ),
        Budget(
            "auth token: 300 dists cost only keyring's own scan (<= 1.1x)",
            token300.name,
            token.name,
            1.1,
            relative_to=(bare300.name, bare.name),
        ),
        Budget(
            "--version: 300 distributions cost nothing (<= 1.1x)",
            version300.name,
            version.name,
            1.1,
        ),
        *hot_budgets,
    ]

    def stop() -> None:
        stop_agent()
        service.stop()

    return cases + hot_cases, budgets, stop


def token_cache_cases(
    exls: str, full: dict[str, str], home: Path
) -> tuple[list, list, Callable[[], None]]:  # type: ignore[type-arg]
    """`exls auth token` from the kernel keyring's token cache and from the exls agent, side
    by side with `secret-tool lookup` (the C floor of a Secret Service read) and `gh auth
    token` (Go)."""
    from bench import Budget, Case

    # Named: on a machine that is a container sharing the host's users the cache is off.
    full = dict(full, EXLS_TOKEN_CACHE="1")
    warm = subprocess.run([exls, "auth", "token"], env=full, capture_output=True, text=True)
    if warm.returncode != 0:  # the read above refilled the cache: from now on it answers
        raise SystemExit(f"exls auth token failed in the bench setup: {warm.stderr}")
    headless = {k: v for k, v in full.items() if k != "DBUS_SESSION_BUS_ADDRESS"}
    headless.update(EXLS_SESSION_STORE="kernel", EXLS_TOKEN_CACHE="0")
    subprocess.run([sys.executable, "-c", STORE_IN_KERNEL], env=headless, check=True, timeout=60)

    lookup = ["secret-tool", "lookup", "service", "exalsius_cli", "username", "session"]
    secret_tool = Case("secret-tool lookup (C, SecretService)", lookup, full)
    cached = Case("exls auth token (kernel keyring token cache)", [exls, "auth", "token"], full)
    kernel_store = Case(
        "exls auth token (kernel store, no cache, no D-Bus)", [exls, "auth", "token"], headless
    )
    # The exls agent (a container: no D-Bus, no keyctl), started the way a login starts it.
    in_agent = {k: v for k, v in full.items() if k not in ("DBUS_SESSION_BUS_ADDRESS",)}
    in_agent.update(EXLS_SESSION_STORE="agent")
    del in_agent["EXLS_TOKEN_CACHE"]
    subprocess.run([sys.executable, "-c", STORE_IN_AGENT], env=in_agent, check=True, timeout=60)
    agent = Case("exls auth token (exls agent)", [exls, "auth", "token"], in_agent)

    def stop_agent() -> None:
        subprocess.run([sys.executable, "-c", STOP_AGENT], env=in_agent, timeout=60, check=False)

    cases = [secret_tool, cached, kernel_store, agent]
    budgets = [
        Budget("auth token (cache) <= 1.5x secret-tool", cached.name, secret_tool.name, 1.5),
        Budget("auth token (agent) <= 1.1x auth token (cache)", agent.name, cached.name, 1.1),
    ]
    gh = shutil.which("gh")
    if gh:
        config = home / "gh"
        config.mkdir()
        (config / "hosts.yml").write_text(GH_HOSTS.format("x" * 30))
        gh_env = dict(full, GH_CONFIG_DIR=str(config), GH_NO_UPDATE_NOTIFIER="1")
        cases.append(Case("gh auth token (Go)", [gh, "auth", "token"], gh_env))
        budgets.append(
            Budget("auth token (cache) faster than gh", cached.name, cases[-1].name, 1.0)
        )
    else:
        print("gh is not installed: `gh auth token` is not compared", file=sys.stderr)
    return cases, budgets, stop_agent
