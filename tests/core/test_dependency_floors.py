"""Dependency floors: no declared range admits a release with a known vulnerability.

A floor is what a fresh install may resolve to (pip picks old versions to satisfy other
packages' pins), so ``pyjwt>=2.8`` meant PyJWT 2.10.0, whose issuer check matched
substrings. Each entry names the advisories the floor excludes; update it when a new one is
published (search the advisories of every dependency, transitive ones that carry requests,
signatures and TLS included).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PROJECTS = {
    "exls-core": ROOT / "exls_core" / "pyproject.toml",
    "exls-flows-pkce": ROOT / "exls_flows_pkce" / "pyproject.toml",
    "exls-flows-device": ROOT / "exls_flows_device" / "pyproject.toml",
    "exls-flows-workload": ROOT / "exls_flows_workload" / "pyproject.toml",
    "exls-flow-example": ROOT / "examples" / "exls-flow-example" / "pyproject.toml",
}

# distribution -> (first safe release, the advisories below it)
SAFE_FLOORS: dict[str, tuple[str, str]] = {
    "pyjwt": (
        "2.13.0",
        "CVE-2024-53861 (2.10.0: iss checked by substring), CVE-2026-32597 (<2.12.0: unknown "
        "crit headers accepted), CVE-2026-48522..48526 (<2.13.0, one a forged-JWT bypass)",
    ),
    "requests": (
        "2.33.0",
        "CVE-2024-47081 (<2.32.4: .netrc credentials leaked), CVE-2024-35195 (<2.32.0), "
        "CVE-2026-25645 (<2.33.0: predictable temp file in extract_zipped_paths)",
    ),
    "urllib3": (
        "2.7.0",
        "CVE-2024-37891 (<2.2.2), CVE-2025-50181 (<2.5.0), decompression bombs in streamed "
        "reads CVE-2026-21441 (<2.6.3) and CVE-2026-44432 (<2.7.0), CVE-2026-44431 (<2.7.0: "
        "Authorization forwarded across origins on proxied redirects)",
    ),
    "cryptography": (
        "50.0.0",
        "GHSA-537c-gmf6-5ccf (<48.0.1: vulnerable OpenSSL in the wheels), CVE-2026-26007, "
        "CVE-2026-39892, CVE-2026-69248/69249 (<49.0.0: X.509), CVE-2026-69247 (<50.0.0)",
    ),
    "idna": ("3.15", "CVE-2024-3651 (<3.7) and CVE-2026-45409 (<3.15): idna.encode DoS"),
    "certifi": ("2024.7.4", "CVE-2023-37920 (e-Tugra), CVE-2024-39689 (GLOBALTRUST) roots"),
    "filelock": (
        "3.20.3",
        "CVE-2025-68146 (<3.20.1: lock file creation follows symlinks), CVE-2026-22701",
    ),
    "click": (
        "8.4.0",
        "CVE-2026-7246 (<8.3.3: command injection in click.edit); and 8.3.3's click.prompt "
        "(err=True) writes the prompt's last character to stdout, data's channel "
        "(tests/routing/test_email_prompt.py fails with it)",
    ),
    "oauthlib": ("3.2.2", "CVE-2022-36087 (<3.2.1: redirect URI validation DoS)"),
}
# Searched, no advisory known against the declared floor (exls-core is ours).
NO_KNOWN_ADVISORY = {"keyring", "pluggy", "rich", "platformdirs", "qrcode", "requests-oauthlib"}
NO_KNOWN_ADVISORY |= {"exls-core"}
REQUIRED_IN_CORE = {"urllib3", "cryptography", "idna", "certifi"}  # transitive, floored here


def declared() -> list[tuple[str, Requirement]]:
    found = []
    for project, path in PROJECTS.items():
        for line in tomllib.loads(path.read_text(encoding="utf-8"))["project"]["dependencies"]:
            found.append((project, Requirement(line)))
    return found


def floor_of(requirement: Requirement) -> Version | None:
    floors = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==")]
    return max(floors) if floors else None


FLOORED = [(p, r) for p, r in declared() if r.name.lower() in SAFE_FLOORS]


@pytest.mark.parametrize(("project", "requirement"), FLOORED, ids=str)
def test_no_floor_admits_a_known_vulnerable_release(project: str, requirement: Requirement) -> None:
    safe, advisories = SAFE_FLOORS[requirement.name.lower()]
    floor = floor_of(requirement)
    assert floor is not None and floor >= Version(safe), (
        f"{project}: {requirement} admits releases below {safe}: {advisories}"
    )


def test_every_dependency_was_checked() -> None:
    unchecked = {r.name.lower() for _, r in declared()} - set(SAFE_FLOORS) - NO_KNOWN_ADVISORY
    assert unchecked == set(), f"look up the advisories of {sorted(unchecked)}"


def test_core_floors_the_transitive_dependencies_it_relies_on() -> None:
    core = {r.name.lower() for project, r in declared() if project == "exls-core"}
    assert core >= REQUIRED_IN_CORE, REQUIRED_IN_CORE - core
