"""The README and the pages under docs/ link to each other and to their pictures by relative links,
as GitHub shows them: every such link leads to a file of this checkout, and every #anchor to a
heading of the page it names (GitHub's anchors: lower case, punctuation dropped, spaces as '-').
The README's pictures stay small (scripts/make_readme_pictures.py makes them)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*```.*?^\s*```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def prose(text: str) -> str:
    """The text without code blocks and inline code, where a [x](y) or a # is not markdown."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def anchors(path: Path) -> set[str]:
    """The #anchors GitHub gives the headings of a markdown file (a repeated one gets -1, -2, ...)."""
    seen: dict[str, int] = {}
    found = set()
    for line in FENCE.sub("", path.read_text(encoding="utf-8")).splitlines():
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
        found.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return found


def relative_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(prose(page.read_text(encoding="utf-8")))
            if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]  # https:, mailto: ... are not this checkout's


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading_of_this_checkout(page):
    broken = []
    for target in relative_links(page):
        file_part, _, anchor = target.partition("#")
        path = (page.parent / unquote(file_part)).resolve() if file_part else page
        if not path.exists() or ROOT not in (path, *path.parents):
            broken.append(f"{target}: no such file")
        elif anchor and (path.suffix != ".md" or anchor not in anchors(path)):
            broken.append(f"{target}: no heading #{anchor} in {path.relative_to(ROOT)}")
    assert broken == [], f"{page.relative_to(ROOT)}: broken links"


def test_the_readme_shows_its_pictures_and_links_every_docs_page():
    links = relative_links(ROOT / "README.md")
    assert {"docs/images/readme-graph.png", "docs/images/readme-strip.png"} <= set(links)
    linked = {Path(t.partition("#")[0]).name for t in links if t.startswith("docs/")}
    assert {p.name for p in PAGES[1:]} <= linked, "a page under docs/ the README does not link"


@pytest.mark.parametrize("name", ["readme-graph.png", "readme-strip.png"])
def test_the_readme_pictures_are_small(name):
    assert (ROOT / "docs" / "images" / name).stat().st_size < 300_000


def test_the_anchors_are_githubs():
    assert {"comfyui-on-your-network---listen", "the-readmes-pictures", "try-it-without-comfyui-make-demo",
            "variations-prompt-lists-and-your-accounts-pace"} <= anchors(ROOT / "README.md")
