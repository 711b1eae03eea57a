"""The leak guard itself: what a test leaves running is reported, what ends is waited for."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from testkit import leaks
from testkit.leaks import Snapshot, keep_while, left_running


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leaks, "SETTLE", 0.2)  # these tests leave things running on purpose


def test_a_thread_left_running_is_reported(quick: None) -> None:
    before = Snapshot.take()
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="left-behind")
    thread.start()
    try:
        assert left_running(before) == ["thread 'left-behind' (daemon=False)"]
    finally:
        stop.set()
        thread.join()
    assert left_running(before) == []


def test_a_child_process_left_running_is_reported(quick: None) -> None:
    before = Snapshot.take()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (report,) = left_running(before)
        assert report.startswith(f"child process {child.pid}: ") and "time.sleep(120)" in report
    finally:
        child.kill()
        child.wait()
    assert left_running(before) == []


def test_work_that_is_ending_is_waited_for() -> None:
    before = Snapshot.take()
    go = threading.Event()
    thread = threading.Thread(target=go.wait, name="finishing")
    thread.start()
    go.set()  # told to stop; it may still be running when the guard looks
    assert left_running(before) == []


def test_registered_work_is_allowed(quick: None) -> None:
    before = Snapshot.take()
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="kept-on-purpose")
    end = keep_while(lambda thing: getattr(thing, "name", "") == "kept-on-purpose", "a test")
    thread.start()
    try:
        assert left_running(before) == []
    finally:
        end()
        stop.set()
        thread.join()
