"""The documentation points only at things that exist: every relative link in README.md and the
docs (files and ``#anchors``) resolves inside the repository, and no page refers to a design
document the repository does not ship."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md"),
                *[p for p in (ROOT / "benchmarks" / "README.md", ROOT / "research" / "README.md") if p.is_file()]])
#: text no page may contain: the upstream design document and the folder it lives in outside the repository
FORBIDDEN = ("DESIGN" + ".md", "../" + "shared")

LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~)")


def _prose(text: str) -> str:
    """``text`` without fenced code blocks and inline code spans (links there are examples)."""
    out, in_fence = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            in_fence = not in_fence
            continue
        if not in_fence:
            out.append(re.sub(r"`[^`]*`", "", line))
    return "\n".join(out)


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, markup and punctuation dropped, spaces -> '-'."""
    text = re.sub(r"`([^`]*)`", r"\1", heading.strip())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading keeps its text
    text = text.lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor GitHub generates for ``page``'s headings (repeated headings get -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    in_fence = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line.strip()):
            in_fence = not in_fence
            continue
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if in_fence or not m:
            continue
        base = _slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(page: Path) -> list[str]:
    return [m.group(1) for m in LINK.finditer(_prose(page.read_text(encoding="utf-8")))]


def test_pages_found():
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert {"README.md", "docs/design.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page):
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = page if not path_part else (page.parent / path_part).resolve()
        try:
            dest.relative_to(ROOT)
        except ValueError:
            broken.append(f"{target} (outside the repository)")
            continue
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no heading with this anchor)")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_reference_to_an_external_design_document(page):
    text = page.read_text(encoding="utf-8")
    found = [word for word in FORBIDDEN if word in text]
    assert not found, f"{page.relative_to(ROOT)} mentions {found}; the project's design page is docs/design.md"


def test_benchmark_and_research_scripts_point_at_the_design_page():
    files = [p for d in ("benchmarks", "research") for p in (ROOT / d).rglob("*")
             if p.suffix in (".py", ".sh", ".md") and p.is_file()]
    offenders = [p.relative_to(ROOT).as_posix() for p in files
                 if any(word in p.read_text(encoding="utf-8") for word in FORBIDDEN)]
    assert not offenders, f"these files mention {FORBIDDEN}; use docs/design.md: {offenders}"


def test_slug_and_link_parsing():
    assert _slug("48 views at 512 px") == "48-views-at-512-px"
    assert _slug("Extraction and `semantic_grad`") == "extraction-and-semantic_grad"
    assert _slug("Result: `cpu3`, three seeds on the CPU") == "result-cpu3-three-seeds-on-the-cpu"
    text = "see [a](x.md#y), ![img](images/p.png) and `[not](a-link.md)`\n```\n[no](code.md)\n```\n"
    assert [m.group(1) for m in LINK.finditer(_prose(text))] == ["x.md#y", "images/p.png"]
