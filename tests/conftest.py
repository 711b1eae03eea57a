"""Shared test setup: every test gets private config, cache and state directories."""

from __future__ import annotations

import os
import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.agents import stop_agent_for
from testkit.leaks import Snapshot, left_running

try:  # not in the e2e session's environment
    from hypothesis import HealthCheck, settings
except ImportError:
    pass
else:
    # Hypothesis times each example (a 200 ms deadline, the "too slow" health check): wall-clock
    # bounds that a loaded machine breaks. Speed is measured in `nox -s bench`, not asserted.
    settings.register_profile("exls", deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile("exls")

# A suite started in the background by a shell without job control (`nohup nox ... &`) runs
# with SIGINT ignored, and so would every exls it starts: the tests of Ctrl+C (exit 130, the
# listener closed) need what a terminal gives. Python's own handler here means SIG_DFL in
# each child after exec, where Python installs it again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _private_dirs(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    runtime = home / "runtime"
    runtime.mkdir(mode=0o700)  # platformdirs wants a private runtime dir, else it warns
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    for name in list(os.environ):
        if name.startswith("EXLS_"):
            monkeypatch.delenv(name)
    # A system keyring timeout stops its calls for the rest of the process: here, the test.
    monkeypatch.setattr("exls_core.session.keyring_calls._system_stalled", None)


@pytest.fixture(autouse=True)
def _private_kernel_keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh anonymous session keyring (inherited by subprocesses) and a scope of its own
    for kernel key descriptions; the scope's keys are removed afterwards."""
    if sys.platform != "linux":
        yield
        return
    from exls_core.session import kernel_keyring as kk
    from kernel_testkit import remove_scope

    scope = f"test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv(kk.SCOPE_ENV, scope)
    try:
        kk.join_new_session_keyring()
    except kk.KeyringRefused:
        yield  # the tests that need the kernel keyring fail on their own, saying why
        return
    real_syscall = kk._syscall
    yield
    monkeypatch.setattr(kk, "_syscall", real_syscall)  # faults a test injected end here
    remove_scope(scope)


@pytest.fixture(autouse=True)
def _nothing_left_running(_private_dirs: None) -> Iterator[None]:
    """Fail a test that leaves a thread or a child process running (see testkit.leaks): it
    would print into the next tests' output or change what they see."""
    before = Snapshot.take()
    yield
    # An agent a test's exls started as a token cache (in a container sharing the host's
    # users, as this machine may be), found in this test's runtime directory (_private_dirs).
    stop_agent_for(os.environ)
    leftovers = left_running(before)
    assert not leftovers, "the test left these running: " + "; ".join(leftovers)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if (
        report.skipped
        and not hasattr(report, "wasxfail")  # an expected failure is not a missing prerequisite
        and os.environ.get("CI", "").lower() in {"1", "true", "yes"}
    ):
        # Never let CI pass by skipping: a missing prerequisite is a failure there.
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which counts as a failure: {report.longrepr}"


ROOT = Path(__file__).resolve().parent.parent
