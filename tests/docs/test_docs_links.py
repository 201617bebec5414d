"""Every relative link in README.md and docs/*.md resolves: the file (or folder) exists, and an
anchor names a heading of the page it points into (GitHub's heading slugs). The README is a front
door to docs/, so a page renamed or a heading reworded must not leave a dead link behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gankd.paths import REPO_ROOT

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
_EXTERNAL = ("http://", "https://", "mailto:")


def _prose(text: str) -> str:
    """The page without code blocks and code spans (a ``[x](y)`` there is not a link)."""
    return _CODE.sub("", _FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = text.lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for h in _HEADING.findall(_FENCE.sub("", page.read_text())):
        s = slug(h)
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def links(page: Path) -> list[str]:
    return [t for t in _LINK.findall(_prose(page.read_text())) if not t.startswith(_EXTERNAL)]


def broken(page: Path) -> list[str]:
    bad = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target}: no heading with anchor #{anchor}")
    return bad


def test_slug_follows_github() -> None:
    assert slug("How the numbers are made (and why)") == "how-the-numbers-are-made-and-why"
    assert slug("Known defect: `cyclegan`") == "known-defect-cyclegan"
    assert slug("A task (today: ten files)") == "a-task-today-ten-files"


def test_the_checker_finds_a_dead_link_and_a_dead_anchor(tmp_path: Path) -> None:
    (tmp_path / "b.md").write_text("# Here\n")
    page = tmp_path / "a.md"
    page.write_text("# Top\n[ok](b.md#here) [self](#top) [gone](c.md) [no anchor](b.md#there)\n"
                    "`[code](x.md)`\n```\n[fenced](y.md)\n```\n[web](https://example.org/z)\n")
    assert broken(page) == ["c.md: no such file", "b.md#there: no heading with anchor #there"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    assert not broken(page), f"{page.relative_to(REPO_ROOT)}: " + "; ".join(broken(page))
