"""The README and the guides in docs/, read as the tests that tie their figures to results files
need them. A plain module rather than tests/docs/conftest.py: conftest files outside packages all
import as ``conftest``, and a second one would replace tests/conftest.py for every later
``from conftest import ...`` in the suite."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"
GUIDES = ("data-scientist", "hospital-admin", "operations", "security", "architecture")


def flat(text: str) -> str:
    """Text with every run of whitespace (line breaks included) as one space: a figure quoted in
    wrapped prose is found whatever the wrapping."""
    return " ".join(text.split())


def guide_path(name: str) -> Path:
    """``docs/<name>.md``, one of :data:`GUIDES`."""
    assert name in GUIDES, f"no guide {name!r}; guides: {GUIDES}"
    return DOCS / f"{name}.md"


def guide(name: str) -> str:
    """A guide's text as written."""
    return guide_path(name).read_text()


def guide_flat(name: str) -> str:
    """A guide's text with its whitespace flattened (see :func:`flat`)."""
    return flat(guide(name))


def section(text: str, heading: str) -> str:
    """The part of ``text`` under the one line ``heading`` (e.g. ``"### Imaging"``), up to the next
    heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if line == heading]
    assert len(starts) == 1, f"{heading!r} found {len(starts)} times"
    body, in_code = [], False
    for line in lines[starts[0] + 1:]:
        in_code ^= line.startswith("```")
        m = re.match(r"^(#+) ", line)
        if m and not in_code and len(m.group(1)) <= level:
            break
        body.append(line)
    return "\n".join(body)
