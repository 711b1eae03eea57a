"""exls's cache files as an attacker on the same machine would try them (issue 15, items 2-3).

A planted symlink must never be followed, neither to read a forged plugin index nor to write
over another file; a cache directory others can write to is made private again and what it
held is dropped; one that belongs to another user is refused with one line naming it.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from cli_kit import exls

from exls_core import cache
from exls_core.paths import lock_dir

EVIL = {
    "group": "exls.flows",
    "name": "evil",
    "value": "evil_module",
    "distribution": "evil-dist",
    "version": "6.6.6",
}


def run_exls(*args: str, cache_home: Path) -> subprocess.CompletedProcess[str]:
    return exls(*args, XDG_CACHE_HOME=str(cache_home))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def forged_index(cache_home: Path) -> tuple[Path, dict[str, object]]:
    """Run exls once so it writes its plugin index; return the file and a copy naming EVIL."""
    assert run_exls("--version", cache_home=cache_home).returncode == 0
    (index,) = (cache_home / "exalsius").glob("plugins-*.json")
    forged = json.loads(index.read_text(encoding="utf-8"))
    forged["answer"].append(EVIL)
    return index, forged


def test_cache_files_and_directories_are_private(tmp_path: Path) -> None:
    index, _ = forged_index(tmp_path)
    assert mode(index.parent) == 0o700
    assert mode(index) == 0o600
    assert [p.name for p in index.parent.iterdir()] == [index.name]  # no temporary left over


def test_a_symlink_planted_at_the_plugin_index_is_not_followed(tmp_path: Path) -> None:
    index, forged = forged_index(tmp_path / "cache")
    planted = tmp_path / "elsewhere.json"
    planted.write_text(json.dumps(forged), encoding="utf-8")
    index.unlink()
    index.symlink_to(planted)

    result = run_exls("--version", cache_home=tmp_path / "cache")
    assert result.returncode == 0
    assert "evil" not in result.stdout  # the forged index was not read
    assert json.loads(planted.read_text(encoding="utf-8")) == forged  # nor written through
    assert not index.is_symlink() and mode(index) == 0o600  # replaced by exls's own file


def test_a_world_writable_cache_directory_is_made_private_and_emptied(tmp_path: Path) -> None:
    index, forged = forged_index(tmp_path)
    index.write_text(json.dumps(forged), encoding="utf-8")  # what another user could plant
    index.parent.chmod(0o777)

    result = run_exls("--version", cache_home=tmp_path)
    assert result.returncode == 0
    assert "evil" not in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line]
    assert warnings == [
        f"Warning: {index.parent} was writable by other users; exls made it private (700) "
        "and dropped the files cached there."
    ]
    assert mode(index.parent) == 0o700 and mode(index) == 0o600


def test_a_readable_cache_directory_is_made_private_silently(tmp_path: Path) -> None:
    index, _ = forged_index(tmp_path)
    index.parent.chmod(0o755)  # what an older exls left behind
    result = run_exls("--version", cache_home=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert mode(index.parent) == 0o700 and index.exists()  # nobody else could write: kept


def test_a_directory_of_another_user_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "exalsius"
    directory.mkdir(mode=0o700)
    monkeypatch.setattr(os, "getuid", lambda: os.stat(directory).st_uid + 1)
    with pytest.raises(cache.UnsafeDirectory) as refused:
        cache.private_dir(directory)
    assert refused.value.message.startswith(f"Refusing to use {directory}: it belongs to another")
    assert "\n" not in str(refused.value)


def test_an_open_directory_exls_did_not_make_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(
        cache.UnsafeDirectory, match=r"others can access it \(mode 777\); run chmod"
    ):
        cache.write_json(shared / "x.json", {})
    assert mode(shared) == 0o777 and list(shared.iterdir()) == []


def test_the_writer_never_opens_a_predictable_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The old writer opened <path>.<pid>.tmp without O_EXCL: a symlink planted there was
    # followed and the victim overwritten.
    directory = tmp_path / "exalsius"
    directory.mkdir(mode=0o700)
    target = directory / "state.json"
    victim = tmp_path / "victim"
    victim.write_text("precious", encoding="utf-8")
    monkeypatch.setattr(os, "getpid", lambda: 4242)
    (directory / "state.json.4242.tmp").symlink_to(victim)
    target.symlink_to(victim)

    cache.write_json(target, {"last_email": "a@example.com"})
    assert victim.read_text(encoding="utf-8") == "precious"
    assert json.loads(target.read_text(encoding="utf-8")) == {"last_email": "a@example.com"}
    assert not target.is_symlink() and mode(target) == 0o600


def test_a_symlinked_entry_is_a_miss(tmp_path: Path) -> None:
    path = cache.entry_path("thing", "key", tmp_path)
    cache.store(path, "key", {"a": 1})
    assert cache.load(path, "key", ttl=60) == {"a": 1}
    os.replace(path, tmp_path / "moved.json")
    os.symlink(tmp_path / "moved.json", path)
    assert cache.load(path, "key", ttl=60) is None


def test_entries_answer_only_for_their_key_and_within_the_ttl(tmp_path: Path) -> None:
    now = [1000.0]
    path = cache.entry_path("thing", ["k", 1], tmp_path)
    cache.store(path, ("k", 1), "answer", clock=lambda: now[0])
    assert cache.load(path, ["k", 1], ttl=10, clock=lambda: now[0]) == "answer"
    assert cache.load(path, ["k", 2], ttl=10, clock=lambda: now[0]) is None
    now[0] += 10
    assert cache.load(path, ["k", 1], ttl=10, clock=lambda: now[0]) is None
    now[0] -= 20  # the clock was set back: an entry from the future is not trusted
    assert cache.load(path, ["k", 1], ttl=10, clock=lambda: now[0]) is None
    assert cache.load(path, ["k", 1], ttl=None, clock=lambda: now[0]) == "answer"


def test_the_lock_directory_fallback_is_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    old = tmp_path / "exalsius" / "locks"
    old.mkdir(parents=True)
    old.chmod(0o755)  # what the fallback used to create
    (tmp_path / "exalsius").chmod(0o755)
    assert lock_dir() == old
    assert mode(old) == 0o700 and mode(old.parent) == 0o700


def test_the_lock_directory_is_not_in_the_runtime_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert lock_dir() == tmp_path / "cache" / "exalsius" / "locks"
    assert mode(lock_dir()) == 0o700
