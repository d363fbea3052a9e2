"""The README and the guides hold together: every relative link reaches a file (and a heading, when
it names one), every guide is reached from the front page, and every command they show belongs to
the command tree (`consortium <group> ...`, as `nvflare poc|job|provision` does)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from docs_text import DOCS, GUIDES, README, REPO, guide_path

PAGES = [README, *(guide_path(g) for g in GUIDES)]
GROUPS = {"demo", "poc", "job", "provision", "site", "incident", "models", "audit", "kit"}
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown page (fenced code is not a heading)."""
    out, in_code = set(), False
    for line in page.read_text().splitlines():
        in_code ^= line.startswith("```")
        m = re.match(r"^#{1,6} (.+)$", line)
        if m and not in_code:
            out.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return out


def code_text(text: str) -> str:
    """The fenced blocks and inline code spans of a page, one per line."""
    blocks = re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S)
    rest = re.sub(r"```[^\n]*\n.*?```", "", text, flags=re.S)
    return "\n".join(blocks + re.findall(r"`([^`\n]+)`", rest))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_reaches_its_file_and_heading(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(target)
    assert not broken, f"{page.relative_to(REPO)}: {broken}"


def test_every_guide_is_linked_from_the_front_page():
    front = README.read_text()

    assert sorted(p.name for p in DOCS.glob("*.md")) == sorted(f"{g}.md" for g in GUIDES)
    for g in GUIDES:
        assert f"](docs/{g}.md)" in front, g


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_shown_is_in_the_command_tree(page):
    used = re.findall(r"(?:^|[\s/(])consortium ([a-z][\w-]*)", code_text(page.read_text()), flags=re.M)

    assert not set(used) - GROUPS, f"{page.name}: commands outside the tree: {sorted(set(used) - GROUPS)}"


def test_the_front_page_shows_every_group_of_the_tree():
    used = re.findall(r"(?:^|[\s/(])consortium ([a-z][\w-]*)", code_text(README.read_text()), flags=re.M)

    assert set(used) == GROUPS
