"""Fixtures of the adversarial suite: the lying provider, sandboxes and scenario batches."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.leaks import Child, keep_while

HERE = Path(__file__).resolve().parent
for _path in (HERE, HERE.parent / "session"):  # the shared file keyring lives in tests/session
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from adv_kit import Outcomes, Scheduler  # noqa: E402
from count_cases import KINDS  # noqa: E402
from lying_idp import LyingIdP  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"attack(kind): the kind of bad input or fault a test tries ({', '.join(KINDS)})"
    )


@pytest.fixture(scope="package", autouse=True)
def scheduler(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scheduler]:
    """Every selected scenario of every module starts with the first adversarial test, and all
    of them have ended (threads joined, processes reaped) before a test of another package."""
    root = tmp_path_factory.mktemp("scenarios")
    running = Scheduler(root)

    def scenario_work(thing: threading.Thread | Child) -> bool:
        if isinstance(thing, Child):  # every scenario's exls runs in its sandbox's home
            cwd = thing.cwd()
            return cwd is not None and cwd.is_relative_to(root)
        return thing.name.startswith(("scenario", "lying-idp"))

    # The scenarios run beside this package's tests (that is their point), never beyond it.
    allowed = keep_while(scenario_work, "the adversarial scheduler, until its package ends")
    try:
        running.start_selected(request.session.items)
        yield running
    finally:
        errors = running.close()
        allowed()
        if sys.platform == "linux":
            from adv_kit import KERNEL_SCOPES

            from kernel_testkit import remove_scope

            for scope in KERNEL_SCOPES:  # every scenario has ended: its kernel keys go
                remove_scope(scope)
    assert errors == [], "the lying provider itself failed"


@pytest.fixture
def idp(request: pytest.FixtureRequest, scheduler: Scheduler) -> LyingIdP:
    """The module's lying provider (its scenarios run against it too)."""
    provider: LyingIdP = scheduler.idp(request.module)
    return provider


@pytest.fixture
def outcomes(request: pytest.FixtureRequest, scheduler: Scheduler) -> Outcomes[object]:
    """The module's scenarios: ``outcomes[name]`` waits for that one's outcome."""
    return Outcomes(scheduler, request.module.__name__)
