"""Shared test setup: every test gets private config, cache and state directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

try:
    from hypothesis import settings
except ImportError:  # the e2e session does not install it
    pass
else:
    # No wall-clock bound on a loaded 2-core machine: hypothesis's 200 ms deadline per
    # example failed tests/session's store properties while adversarial scenarios ran.
    settings.register_profile("exls", deadline=None)
    settings.load_profile("exls")


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
