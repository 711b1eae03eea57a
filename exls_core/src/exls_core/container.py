"""Whether exls runs in a container, and whether that container shares the host's users.

The browser flow asks :func:`is_container` (through the contract, :mod:`exls_core.plugin`) to
explain why no browser opens; the session store asks :func:`shares_host_keyring`: the kernel
keyring is not namespaced, so in a container without its own user namespace every process of
the same uid on the host, other tenants' containers included, shares it.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # as typing's (mypy reads it so); importing typing costs auth token

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

CONTAINER_FILES = ("/.dockerenv", "/run/.containerenv")  # Docker, Podman
IDENTITY_MAP = ["0", "0", "4294967295"]  # /proc/self/uid_map of the host's user namespace


def is_container(
    environ: Mapping[str, str], exists: Callable[[str], bool] = os.path.exists
) -> bool:
    """Docker, Podman, systemd-nspawn, LXC or a Kubernetes pod (environment and marker files)."""
    if environ.get("container") or environ.get("KUBERNETES_SERVICE_HOST"):
        return True
    return any(exists(path) for path in CONTAINER_FILES)


def _uid_map() -> str:
    try:
        with open("/proc/self/uid_map", encoding="ascii") as file:
            return file.read()
    except OSError:
        return ""


def in_host_user_namespace(read_uid_map: Callable[[], str] = _uid_map) -> bool:
    """An identity uid map: the uids here are the host's (no user namespace of our own)."""
    return read_uid_map().split() == IDENTITY_MAP


def shares_host_keyring(
    environ: Mapping[str, str] | None = None,
    exists: Callable[[str], bool] = os.path.exists,
    read_uid_map: Callable[[], str] = _uid_map,
) -> bool:
    """A container sharing the host's user namespace, so its kernel keyring too."""
    return is_container(os.environ if environ is None else environ, exists) and (
        in_host_user_namespace(read_uid_map)
    )
