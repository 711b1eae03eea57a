"""Installing exls distributions into fresh virtual environments with uv (for the fixtures)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
META = ROOT  # the `exls` distribution: pins the four below at matching versions
CORE = ROOT / "exls_core"
PKCE = ROOT / "exls_flows_pkce"
DEVICE = ROOT / "exls_flows_device"
WORKLOAD = ROOT / "exls_flows_workload"
EXAMPLE = ROOT / "examples" / "exls-flow-example"
PLUGINS = ROOT / "tests" / "plugins"


def _uv() -> list[str]:
    found = shutil.which("uv")
    if found:
        return [found]
    try:
        import uv  # noqa: F401
    except ImportError:
        pytest.fail("uv is needed to build test virtual environments: pip install uv")
    return [sys.executable, "-m", "uv"]


@dataclass
class Venv:
    path: Path
    home: Path

    @property
    def exls(self) -> str:
        return str(self.path / "bin" / "exls")

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            # A user's environment, not CI's: CI=true would make the browser flow unavailable.
            if not k.startswith(("EXLS_", "XDG_", "VIRTUAL_ENV", "BROWSER", "DISPLAY", "WAYLAND"))
            and k not in {"CI", "SSH_CONNECTION", "SSH_TTY", "SSH_CLIENT"}
        }
        env.update(
            HOME=str(self.home),
            XDG_CONFIG_HOME=str(self.home / "config"),
            XDG_CACHE_HOME=str(self.home / "cache"),
            XDG_STATE_HOME=str(self.home / "state"),
            XDG_RUNTIME_DIR=str(self.home / "runtime"),
            # A working keyring that needs no D-Bus: the tests' file-backed one (login checks
            # the keyring before it runs a flow).
            PYTHON_KEYRING_BACKEND="exls_test_filekeyring.FileKeyring",
            PYTHONPATH=str(ROOT / "tests" / "session"),
            EXLS_TEST_KEYRING_DIR=str(self.home / "keyring"),
        )
        if "EXLS_KERNEL_KEY_SCOPE" in os.environ:  # this test's kernel keys (tests/conftest.py)
            env["EXLS_KERNEL_KEY_SCOPE"] = os.environ["EXLS_KERNEL_KEY_SCOPE"]
        env.update(extra)
        return env

    def run(
        self, *args: str, input: str | None = None, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.exls, *args],
            env=self.env(**extra),
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def flows_json(self, **extra: str) -> dict:  # type: ignore[type-arg]
        result = self.run("auth", "flows", "--json", **extra)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


@pytest.fixture(scope="session")
def make_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """make_venv(*project_dirs) -> a Venv with exactly those distributions (not editable);
    a string is a requirement from the package index (``"pytest>=8"``)."""
    made: dict[tuple[Path | str, ...], Venv] = {}

    def make(*projects: Path | str) -> Venv:
        if projects in made:
            return made[projects]
        path = tmp_path_factory.mktemp("venv")
        subprocess.run([*_uv(), "venv", "-q", str(path / "v")], check=True)
        subprocess.run(
            [
                *_uv(),
                "pip",
                "install",
                "-q",
                "--no-sources",  # the workspace's sources would make exls-core editable
                "--python",
                str(path / "v" / "bin" / "python"),
                *map(str, projects),
            ],
            check=True,
        )
        for record in (path / "v").glob(
            "lib/python*/site-packages/exls*.dist-info/direct_url.json"
        ):
            editable = json.loads(record.read_text()).get("dir_info", {}).get("editable")
            assert not editable, f"an editable install is not what users get: {record}"
        venv = Venv(path / "v", path / "home")
        made[projects] = venv
        return venv

    yield make
