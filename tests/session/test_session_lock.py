"""The session lock: one per store, whatever the environment of the process that takes it.

An SSH shell (XDG_RUNTIME_DIR set), a cron job (not set) and a shell with another TMPDIR of
the same user reach the same store, so they must take the same lock: here real processes in
those environments hold it while another one tries (issue 23, item 3).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

HOLD = """
import sys
from exls_core.session.locking import session_lock
with session_lock():
    print("held", flush=True)
    sys.stdin.read()
"""

TRY = """
import sys
from exls_core.errors import ExlsError
from exls_core.session.locking import session_lock
try:
    with session_lock(timeout=0.05):
        print("taken")
except ExlsError as exc:
    print(exc.message)
"""


def _env(tmp_path: Path, name: str, runtime: bool) -> dict[str, str]:
    """This test's cache directory, with or without a runtime directory, and a TMPDIR of its own."""
    env = dict(os.environ)
    tmpdir = tmp_path / f"tmp-{name}"
    tmpdir.mkdir(mode=0o700)
    env["TMPDIR"] = str(tmpdir)
    if runtime:
        run = tmp_path / f"run-{name}"
        run.mkdir(mode=0o700)
        env["XDG_RUNTIME_DIR"] = str(run)
    else:
        env.pop("XDG_RUNTIME_DIR", None)
    return env


@contextmanager
def held_by_a_process(env: Mapping[str, str]) -> Iterator[None]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        yield
    finally:
        holder.communicate("", timeout=60)


def _try_lock(env: Mapping[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", TRY], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("holder_runtime", [True, False], ids=["holder-runtime", "holder-cron"])
def test_processes_with_and_without_a_runtime_dir_share_one_lock(
    tmp_path: Path, holder_runtime: bool
) -> None:
    holder = _env(tmp_path, "holder", runtime=holder_runtime)
    others = [
        _env(tmp_path, "other", runtime=not holder_runtime),
        _env(tmp_path, "same-kind", runtime=holder_runtime),  # another TMPDIR (and runtime dir)
    ]
    with held_by_a_process(holder):
        for env in others:
            answer = _try_lock(env)
            assert answer.startswith("Another exls process kept the session lock ("), (
                f"took another lock than the holder's (XDG_RUNTIME_DIR "
                f"{env.get('XDG_RUNTIME_DIR')}, TMPDIR {env['TMPDIR']}): {answer}"
            )
    for env in [holder, *others]:
        assert _try_lock(env) == "taken"  # free again, for everyone


def test_the_lock_file_is_created_0600_whatever_the_umask(tmp_path: Path) -> None:
    from exls_core.session.locking import lock_path

    script = "import os; os.umask(0); " + TRY.replace("\nimport sys", "\nimport os, sys")
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.stdout == "taken\n", done.stderr
    assert stat.S_IMODE(os.stat(lock_path()).st_mode) == 0o600


def test_a_lock_file_left_readable_by_an_older_exls_is_narrowed(tmp_path: Path) -> None:
    from exls_core.session.locking import lock_path, session_lock

    path = Path(lock_path())
    path.touch(mode=0o644)
    path.chmod(0o644)
    with session_lock(timeout=5):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
