"""Every code block of docs/plugins.md, run or checked against the file it shows (issue 25).

- A Python block that names a file of this repository in its first line (``# path``) is that
  file, or an excerpt of it: every statement it shows is in the file as it is, and so is
  every name it imports. The files themselves run elsewhere (the example plugin and its own
  tests in tests/install).
- Any other Python block is run, and the hooks it defines must match the hook specifications.
- A TOML block parses; one that names a file is a part of that file's tables.
- A shell block is valid shell; ``exls`` transcripts (``text`` blocks of ``$ exls ...``) are
  compared with the output of a real install in tests/install.
"""

from __future__ import annotations

import ast
import re
import subprocess
import tomllib
import types
from pathlib import Path
from typing import Any

import pluggy
import pytest

from exls_core.plugin import PROJECT, FlowSpec, RoutingSpec

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "plugins.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks(language: str) -> list[tuple[int, str]]:
    """(line number, code) of each block in that language."""
    text = PAGE.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, m.start()) + 1, m.group(2))
        for m in FENCE.finditer(text)
        if m.group(1) == language
    ]


def named_file(code: str) -> Path | None:
    """The repository file a block shows, from its first line ``# path`` (or ``# path (...)``)."""
    first = code.splitlines()[0] if code.strip() else ""
    match = re.fullmatch(r"# ([\w./-]+\.(?:py|toml))( \(.*\))?", first)
    if match is None:
        return None
    for base in (ROOT, ROOT / "examples" / "exls-flow-example"):
        if (base / match.group(1)).is_file():
            return base / match.group(1)
    pytest.fail(f"the block names {match.group(1)}, which is no file here")


def test_every_block_is_in_a_language_this_test_checks() -> None:
    text = PAGE.read_text(encoding="utf-8")
    languages = {m.group(1) for m in FENCE.finditer(text)}
    assert languages <= {"python", "toml", "sh", "text"}
    assert len(blocks("python")) >= 5


def imported(tree: ast.Module) -> set[tuple[str, str]]:
    names = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            names |= {(node.module or "", alias.name) for alias in node.names}
        elif isinstance(node, ast.Import):
            names |= {("", alias.name) for alias in node.names}
    return names


def statements(tree: ast.Module) -> list[str]:
    return [ast.dump(n) for n in tree.body if not isinstance(n, ast.Import | ast.ImportFrom)]


def is_excerpt(code: str, source: str) -> list[str]:
    """What the block shows that the file does not have (empty: a faithful excerpt)."""
    block, file = ast.parse(code), ast.parse(source)
    missing = [f"import {m}.{n}" for m, n in sorted(imported(block) - imported(file))]
    in_file = statements(file)
    missing += [
        ast.unparse(node).splitlines()[0]
        for node in block.body
        if not isinstance(node, ast.Import | ast.ImportFrom) and ast.dump(node) not in in_file
    ]
    return missing


@pytest.mark.parametrize(("line", "code"), blocks("python"), ids=lambda v: str(v)[:12])
def test_a_python_block(line: int, code: str) -> None:
    path = named_file(code)
    if path is not None:
        source = path.read_text(encoding="utf-8")
        if code != source:
            assert is_excerpt(code, source) == [], f"plugins.md:{line} differs from {path}"
        return
    module = types.ModuleType(f"plugins_md_{line}")
    exec(compile(code, f"plugins.md:{line}", "exec"), module.__dict__)  # noqa: S102
    hooks = [name for name in vars(module) if name.startswith("exls_")]
    if hooks:  # a plugin: pluggy refuses hooks that match no specification
        manager = pluggy.PluginManager(PROJECT)
        manager.add_hookspecs(FlowSpec)
        manager.add_hookspecs(RoutingSpec)
        manager.register(module)
        manager.check_pending()


def test_the_excerpt_check_would_notice_a_drift() -> None:
    source = "from m import a, b\n\nX = 1\n\n\ndef f() -> int:\n    return X\n"
    assert is_excerpt("from m import a\n\nX = 1\n", source) == []
    assert is_excerpt("from m import c\n\nX = 2\n", source) == ["import m.c", "X = 2"]


def subset(part: Any, whole: Any) -> bool:
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            key in whole and subset(value, whole[key]) for key, value in part.items()
        )
    return bool(part == whole)


@pytest.mark.parametrize(("line", "code"), blocks("toml"), ids=lambda v: str(v)[:12])
def test_a_toml_block(line: int, code: str) -> None:
    table = tomllib.loads(code)
    path = named_file(code)
    if path is not None:
        whole = tomllib.loads(path.read_text(encoding="utf-8"))
        assert subset(table, whole), f"plugins.md:{line} is not part of {path}"


@pytest.mark.parametrize(("line", "code"), blocks("sh"), ids=lambda v: str(v)[:12])
def test_a_shell_block(line: int, code: str) -> None:
    result = subprocess.run(["bash", "-n"], input=code, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"plugins.md:{line}: {result.stderr}"


def test_the_test_recipe_is_the_example_plugins_own_tests() -> None:
    tests = ROOT / "examples" / "exls-flow-example" / "tests" / "test_flow.py"
    assert tests.read_text(encoding="utf-8") in [code for _, code in blocks("python")]
