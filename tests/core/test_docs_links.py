"""The documentation lives in the repository, and every relative link in it works there.

README.md and docs/*.md are read on GitHub or in a checkout: a link to a missing file, to a
heading that is not there, or out of the repository (``../shared/...``) is broken for whoever
reads them. External links (https:, mailto:) are not fetched: no traffic off the machine.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[2]

FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target) and ![alt](target), with an optional "title"; text may hold one level of [].
INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^\s)]+)(?:\s+\"[^\"]*\")?\s*\)"
)
REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HTML_LINK = re.compile(r"<(?:a|img)\s[^>]*?(?:href|src)=\"([^\"]+)\"", re.IGNORECASE)
HTML_ANCHOR = re.compile(r"<a\s[^>]*?(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)
HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def doc_pages(root: Path) -> list[Path]:
    docs = root / "docs"
    return [root / "README.md", *sorted(docs.rglob("*.md") if docs.is_dir() else [])]


def _outside_fences(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) for every line that is not inside a fenced code block."""
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        opening = FENCE.match(line)
        if fence is None and opening:
            fence = opening.group(1)[0] * 3
        elif fence is not None and line.strip().startswith(fence):
            fence = None
        elif fence is None:
            yield number, line


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link counts by its text
    text = text.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every #fragment a link to this page may use (duplicate headings get -1, -2, ...)."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in _outside_fences(page.read_text(encoding="utf-8")):
        found.update(HTML_ANCHOR.findall(line))
        heading = HEADING.match(line)
        if heading:
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> Iterator[tuple[int, str]]:
    """(line number, target) of every link outside code, as written."""
    for number, line in _outside_fences(page.read_text(encoding="utf-8")):
        prose = INLINE_CODE.sub("", line)
        targets = INLINE_LINK.findall(prose) + HTML_LINK.findall(prose)
        definition = REFERENCE_DEFINITION.match(prose)
        if definition:
            targets.append(definition.group(1))
        for target in targets:
            yield number, target.strip("<>")


def problem(page: Path, target: str, root: Path) -> str | None:
    """Why a link from page is broken, or None when it resolves inside root."""
    if SCHEME.match(target) or target.startswith("//"):
        if target.lower().startswith(("https:", "http:", "mailto:")):
            return None  # external: not fetched
        return "is not a relative link or a web address"
    path_part, _, fragment = target.partition("#")
    path_part = unquote(path_part.split("?", 1)[0])
    if path_part.startswith("/"):
        return "is an absolute path; use a path relative to this page"
    resolved = (page.parent / path_part).resolve() if path_part else page.resolve()
    if not resolved.is_relative_to(root.resolve()):
        return "leaves the repository"
    if not resolved.exists():
        return "points to a file that does not exist"
    if fragment and resolved.suffix == ".md" and unquote(fragment) not in anchors(resolved):
        return f"points to #{fragment}, which is not a heading of {resolved.name}"
    return None


def broken_links(root: Path) -> list[str]:
    found = []
    for page in doc_pages(root):
        for number, target in links(page):
            why = problem(page, target, root)
            if why:
                found.append(f"{page.relative_to(root)}:{number}: {target} {why}")
    return found


def test_every_relative_link_in_the_docs_resolves_inside_the_repository() -> None:
    assert (ROOT / "docs" / "index.md").is_file()
    assert broken_links(ROOT) == []


def test_every_docs_page_is_reachable_from_the_readme_or_the_index() -> None:
    linked = set()
    for page in (ROOT / "README.md", ROOT / "docs" / "index.md"):
        for _, target in links(page):
            path_part = target.partition("#")[0]
            if path_part and not SCHEME.match(target):
                linked.add((page.parent / unquote(path_part)).resolve())
    orphans = [
        str(page.relative_to(ROOT))
        for page in doc_pages(ROOT)[1:]
        if page.resolve() not in linked and page.name != "index.md"
    ]
    assert orphans == [], "link these pages from docs/index.md"


def test_readme_opens_with_the_demo_and_the_test_command() -> None:
    # .ci/run runs the second command; people copy both from the top of the README.
    first_block = (ROOT / "README.md").read_text(encoding="utf-8").split("```")[1]
    lines = [line.split("#")[0].strip() for line in first_block.splitlines()[1:] if line]
    assert lines == [
        "python3 -m pip install nox uv && nox -s demo",
        "python3 -m pip install nox uv && nox",
    ]


def test_the_checker_finds_each_kind_of_broken_link(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (tmp_path / "outside.md").write_text("# Outside\n")  # exists, but not in the repository
    (root / "docs" / "guide.md").write_text(
        "# The guide\n\n## `exls login` hangs?\n\n## Again\n\n## Again\n"
        '<a id="custom"></a>\n'
        "[self](#the-guide) [up](../README.md#top)\n"
    )
    (root / "README.md").write_text(
        "# Top\n\n"
        "[ok](docs/guide.md) [code heading](docs/guide.md#exls-login-hangs) "
        "[second](docs/guide.md#again-1) [html](docs/guide.md#custom) "
        '[titled](docs/guide.md "a title") [web](https://example.com/x) [mail](mailto:a@b.c)\n'
        "[out](../outside.md) [missing](docs/missing.md) [heading](docs/guide.md#nope)\n"
        "[abs](/etc/passwd) [file](file:///etc/passwd)\n"
        "`[in code](nowhere.md)`\n\n"
        "```\n[in a fence](nowhere.md)\n```\n\n"
        "[ref]: docs/gone.md\n"
        '<a href="../outside.md">html out</a>\n'
    )
    assert broken_links(root) == [
        "README.md:4: ../outside.md leaves the repository",
        "README.md:4: docs/missing.md points to a file that does not exist",
        "README.md:4: docs/guide.md#nope points to #nope, which is not a heading of guide.md",
        "README.md:5: /etc/passwd is an absolute path; use a path relative to this page",
        "README.md:5: file:///etc/passwd is not a relative link or a web address",
        "README.md:12: docs/gone.md points to a file that does not exist",
        "README.md:13: ../outside.md leaves the repository",
    ]
