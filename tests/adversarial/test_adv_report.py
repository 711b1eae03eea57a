"""docs/adversarial.md's table of cases must be what the suite really collects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_the_documented_table_matches_the_collected_cases() -> None:
    check = subprocess.run(
        [sys.executable, str(HERE / "count_cases.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=HERE.parent.parent,
    )
    assert check.returncode == 0, check.stderr + check.stdout
