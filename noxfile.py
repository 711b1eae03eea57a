"""Developer and CI tasks. `nox` runs the whole suite; `nox -s demo` shows a real login.

Virtualenvs are made with uv (fast). Only the running interpreter is used: the machines
here have one Python, and exls supports 3.11+.
"""

from __future__ import annotations

import sys

import nox

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "types", "tests", "install_matrix", "e2e"]
nox.options.error_on_missing_interpreters = True

DISTRIBUTIONS = ["exls_core", "exls_flows_pkce", "exls_flows_device", "exls_flows_workload"]
DEV = ["pytest>=8", "hypothesis>=6.100", "trustme>=1.1", "zxing-cpp>=2.2"]
E2E = ["pytest>=8", "trustme>=1.1", "selenium>=4.20", "secretstorage>=3.3", "requests"]


def install_exls(session: nox.Session, *extra: str) -> None:
    editable = [arg for dist in DISTRIBUTIONS for arg in ("-e", dist)]
    session.install(*editable, *extra)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and format check."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def types(session: nox.Session) -> None:
    """mypy, strict on exls_core."""
    install_exls(session, "mypy>=1.10", "types-requests", "pytest", "hypothesis")
    session.run(
        "mypy",
        "exls_core/src/exls_core",
        "exls_flows_pkce/src/exls_flows_pkce",
        "exls_flows_device/src/exls_flows_device",
        "exls_flows_workload/src/exls_flows_workload",
    )


@nox.session
def tests(session: nox.Session) -> None:
    """Unit and integration tests (everything but the installs and the end-to-end tests)."""
    install_exls(session, *DEV)
    session.run(
        "pytest",
        "-m",
        "not e2e and not install",
        "--ignore=tests/e2e",
        *session.posargs,
    )


@nox.session
def install_matrix(session: nox.Session) -> None:
    """Real installs: full, headless-only, a third-party plugin, a broken plugin."""
    install_exls(session, *DEV, "uv")
    session.run(
        "pytest",
        "-m",
        "install",
        "tests/install",
        "tests/routing",
        "tests/adversarial/test_adv_plugin_nonce.py",
        *session.posargs,
    )


@nox.session
def e2e(session: nox.Session) -> None:
    """End to end: node-oidc-provider, a real Secret Service and headless Chromium."""
    session.run("bash", "scripts/system-deps.sh", external=True)
    install_exls(session, *E2E)  # the provider's `npm ci` is run by the test fixture
    session.run("pytest", "-m", "e2e", "tests/e2e", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Start the local identity provider and run `exls login` against it."""
    session.run("bash", "scripts/system-deps.sh", external=True)
    install_exls(session, *E2E)
    session.run("python", "tests/demo.py", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Start-up and hot-path benchmarks: medians and ratios, plus a JSON file."""
    session.run("bash", "scripts/system-deps.sh", external=True)
    # gh (Debian package) is a point of comparison for `exls auth token`, not a dependency.
    session.run(
        "bash",
        "-c",
        'command -v gh >/dev/null || { [ "$(id -u)" = 0 ] && '
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gh >/dev/null; } || "
        "echo 'gh not installed: run apt-get install gh to compare with it' >&2",
        external=True,
    )
    install_exls(session, "trustme>=1.1", "secretstorage>=3.3")
    session.run("python", "tests/bench/bench.py", *session.posargs)


@nox.session(venv_backend="none")
def soak(session: nox.Session) -> None:
    """The suite N times (`nox -s soak -- 10 [--load]`): passes and failures per test."""
    session.run(sys.executable, "scripts/soak.py", *session.posargs, external=True)
