"""The access token cached in the real kernel keyring: coherence with the store, doubts, faults.

Each test has its own session keyring and key scope (tests/conftest.py). Stores here are the
in-memory keyring or the kernel store, each with a TokenCache as open_store gives them.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from session_testkit import CLIENT_ID, FakeIdP, MemoryKeyring, make_session
from test_kernel_store import inject

from exls_core.config import Settings, load_settings
from exls_core.session import kernel_keyring as kk
from exls_core.session import token_cache
from exls_core.session.kernel_store import KernelSessionStore
from exls_core.session.model import binding
from exls_core.session.refresh import get_access_token
from exls_core.session.store import SessionStore
from exls_core.session.token_cache import TokenCache, cached_token
from kernel_testkit import payload, scoped_keys

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the Linux kernel keyring")

ISSUER = "https://idp.example/"


@pytest.fixture(autouse=True)
def _cache_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chosen explicitly: this test machine may be a container sharing the host's kernel
    keyring, where the cache is off by default (test_agent_store tests that rule)."""
    monkeypatch.setenv("EXLS_TOKEN_CACHE", "1")


def cached_store(kind: str = "memory", enabled: bool = True) -> SessionStore:
    cache = TokenCache(enabled)
    return KernelSessionStore(cache=cache) if kind == "kernel" else SessionStore(cache=cache)


def proc_keys_timeout(serial: int) -> str:
    """The timeout column of /proc/keys for a key (``59m``, ``1h``, ``perm``)."""
    with open("/proc/keys") as file:
        for line in file:
            fields = line.split()
            if int(fields[0], 16) == serial:
                return fields[3]
    raise AssertionError(f"key {serial} not in /proc/keys")


@pytest.mark.parametrize("kind", ["memory", "kernel"])
def test_a_stored_session_is_cached_until_its_expiry(
    memory_keyring: MemoryKeyring, kind: str
) -> None:
    session = make_session(ISSUER, access_token="at-stored", expires_at=time.time() + 3000)
    cached_store(kind).save(session)
    assert cached_token() == "at-stored"
    assert cached_token(binding(ISSUER, CLIENT_ID)) == "at-stored"
    serial, described = scoped_keys()["token"]
    assert int(described.split(";")[3], 16) == kk.PRIVATE  # this user only
    assert proc_keys_timeout(serial) in ("49m", "50m")  # the kernel removes it at expiry


def test_any_doubt_is_a_miss(
    memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached_store().save(make_session(ISSUER, access_token="at-1"))
    assert cached_token(binding("https://other.example/", CLIENT_ID)) is None
    assert cached_token(clock=lambda: time.time() + 3600 - 59) is None  # refresh is due
    monkeypatch.setenv("EXLS_AUTH_ISSUER", "https://other.example/")  # other inputs
    assert cached_token() is None
    monkeypatch.delenv("EXLS_AUTH_ISSUER")
    assert cached_token() == "at-1"
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "exalsius" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("[auth]\n")  # a config file appears: the settings may differ now
    assert cached_token() is None


def test_an_edited_config_file_is_a_miss(
    memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "exls.toml"
    config.write_text("[auth]\n")
    monkeypatch.setenv("EXLS_CONFIG_FILE", str(config))
    cached_store().save(make_session(ISSUER, access_token="at-1"))
    assert cached_token() == "at-1"
    config.write_text('[auth]\nissuer = "https://other.example/"\n')
    assert cached_token() is None


@pytest.mark.parametrize(
    "record",
    [
        b"\0",
        b"garbage",
        b"exls-token-cache/0\x001e12\x00b\x00g\x00at\x00x",
        b"exls-token-cache/1\x00nan\x00b\x00g\x00at",
        b"\xff\xfe",
    ],
)
def test_a_record_exls_cannot_read_is_a_miss(record: bytes) -> None:
    key = kk.add(kk.store_keyring(), token_cache.NAME, record)
    kk.set_permissions(key)
    assert cached_token() is None


def test_logout_and_a_new_login_invalidate_it(memory_keyring: MemoryKeyring) -> None:
    store = cached_store()
    store.save(make_session(ISSUER, access_token="at-alice", subject="alice"))
    store.save(make_session(ISSUER, access_token="at-bob", subject="bob"))  # switch accounts
    assert cached_token() == "at-bob"
    store.clear()
    assert cached_token() is None
    assert "token" not in scoped_keys()


def test_a_failed_store_leaves_no_stale_token(memory_keyring: MemoryKeyring) -> None:
    from exls_core.session.store import StoreError

    store = cached_store()
    store.save(make_session(ISSUER, access_token="at-old"))
    memory_keyring.fail_on_write = memory_keyring.writes + 2  # during the new chunks
    with pytest.raises(StoreError):
        store.save(make_session(ISSUER, access_token="at-new"))
    assert cached_token() is None  # dropped before the store began; the old session stays
    memory_keyring.fail_on_write = None
    settings = Settings(issuer=ISSUER, client_id=CLIENT_ID)
    assert get_access_token(settings, store=store) == "at-old"  # ... and refills it
    assert cached_token() == "at-old"


def test_a_read_refills_it_unless_a_logout_raced_the_read(memory_keyring: MemoryKeyring) -> None:
    SessionStore().save(make_session(ISSUER, access_token="at-1"))  # stored without a cache
    settings = Settings(issuer=ISSUER, client_id=CLIENT_ID)
    assert get_access_token(settings, store=cached_store()) == "at-1"
    assert cached_token() == "at-1"

    reader = cached_store()
    found = reader.load_hot()
    assert found is not None
    cached_store().clear()  # a logout between the reader's read and its refill
    reader.remember_token(found)
    assert cached_token() is None


def test_a_refresh_replaces_it(memory_keyring: MemoryKeyring, idp: FakeIdP) -> None:
    settings = Settings(issuer=idp.issuer, client_id=CLIENT_ID, http_timeout=5.0)
    store = cached_store()
    store.save(make_session(idp.issuer, access_token="at-old", expires_at=time.time() + 30))
    assert cached_token() is None  # valid for 30 s only: never served from the cache
    assert get_access_token(settings, store=store) == "at-1"
    assert cached_token() == "at-1"
    assert get_access_token(settings, store=cached_store()) == "at-1"
    assert idp.refreshes == 1


def test_the_opt_out_stops_reads_and_writes_but_not_drops(
    memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached_store().save(make_session(ISSUER, access_token="at-1"))
    off = cached_store(enabled=False)
    off.save(make_session(ISSUER, access_token="at-2"))  # drops the old record, puts none
    assert "token" not in scoped_keys()
    assert off.cache is not None and off.cache.lookup(binding(ISSUER, CLIENT_ID)) is None
    cached_store().save(make_session(ISSUER, access_token="at-3"))
    monkeypatch.setenv("EXLS_TOKEN_CACHE", "0")
    assert cached_token() is None
    off.clear()
    assert "token" not in scoped_keys()


@pytest.mark.parametrize("code", [errno.EPERM, errno.ENOSYS])
def test_a_refusing_kernel_means_no_cache_and_no_error(
    memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    inject(monkeypatch, code)
    store = cached_store()
    store.save(make_session(ISSUER, access_token="at-1"))
    assert cached_token() is None
    assert get_access_token(Settings(issuer=ISSUER, client_id=CLIENT_ID), store=store) == "at-1"
    store.clear()


def test_a_full_quota_only_costs_the_cache(
    memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached_store().save(make_session(ISSUER, access_token="at-1"))
    with monkeypatch.context() as patched:
        inject(patched, errno.EDQUOT, only="add_key")
        cached_store().save(make_session(ISSUER, access_token="at-2"))  # stored all the same
    assert memory_keyring.names()  # the session is in the keyring store
    assert cached_token() is None  # and no stale at-1 is served


def test_the_cache_never_holds_what_it_cannot_check(memory_keyring: MemoryKeyring) -> None:
    cache = TokenCache()
    cache.put("at\nwith a newline", time.time() + 3600, "b", "g")
    cache.put("at-ok", float("nan"), "b", "g")
    cache.put("at-ok", time.time() - 5, "b", "g")
    assert "token" not in scoped_keys()
    assert payload(token_cache.NAME) is None


def test_entries_of_another_scope_are_invisible(
    memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached_store().save(make_session(ISSUER, access_token="at-1"))
    monkeypatch.setenv(kk.SCOPE_ENV, os.environ[kk.SCOPE_ENV] + "-other")
    assert cached_token() is None


def test_the_record_names_its_store_version(memory_keyring: MemoryKeyring) -> None:
    from exls_core.session import chunks
    from exls_core.session.store import POINTER

    cached_store().save(make_session(ISSUER, access_token="at-1"))
    raw = payload(token_cache.NAME)
    assert raw is not None
    fields: list[Any] = raw.decode().split("\0")
    pointer = chunks.Pointer.decode(memory_keyring.entries[("exalsius_cli", POINTER)])
    assert fields[:5] == [
        token_cache.FORMAT,
        fields[1],
        binding(ISSUER, CLIENT_ID),
        pointer.generation,
        "at-1",
    ]
    from exls_core.container import shares_host_keyring

    marker = f"shares-host-keyring={int(shares_host_keyring())}"  # this machine may be one
    assert fields[5:] == [*token_cache.inputs(), marker]


def test_the_config_key_turns_it_on_in_a_container_sharing_the_hosts_keyring(
    memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    """There the cache is off by default; ``token_cache = true`` turns reads on as well as
    writes. A record the host wrote into the shared keyring stays unread in the container."""
    monkeypatch.delenv("EXLS_TOKEN_CACHE")
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "exalsius" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("[auth]\ntoken_cache = true\n")
    monkeypatch.setattr("exls_core.container.shares_host_keyring", lambda: False)
    on_the_host = cached_store(enabled=True)
    on_the_host.save(make_session(ISSUER, access_token="at-host"))
    assert cached_token() == "at-host"  # the host's own record, for the host

    monkeypatch.setattr("exls_core.container.shares_host_keyring", lambda: True)
    assert not token_cache.wanted(None)  # the default there: off
    assert cached_token() is None  # the host's record is not the container's
    configured = token_cache.for_settings(load_settings().token_cache)
    assert configured is not None and configured.enabled
    assert configured.lookup(binding(ISSUER, CLIENT_ID)) is None

    in_the_container = SessionStore(cache=configured)
    expires_at = time.time() + 3000
    in_the_container.save(make_session(ISSUER, access_token="at-c", expires_at=expires_at))
    assert configured.lookup(binding(ISSUER, CLIENT_ID)) == ("at-c", expires_at)
    assert cached_token() == "at-c"  # the fast path: a record these settings allow
    config.write_text("[auth]\n")  # back to the default there: off, and the fast path agrees
    assert load_settings().token_cache is None and cached_token() is None
