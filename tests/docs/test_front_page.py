"""The front page (README.md) stays a front page: short, its two commands true to the Makefile, and
every headline figure linked to the results file it comes from and found there."""

from __future__ import annotations

import re

import pytest
from docs_text import README, REPO, section

from conftest import RESULTS

MAX_WORDS = 1500
FIGURE = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:x| %| MB| s)|(?<![\w.])\d+\.\d+")  # 14.5x, +2.6 %, 65 MB, 0.145 s, 0.796


@pytest.fixture(scope="module")
def front() -> str:
    return README.read_text()


def measured_rows(front: str) -> list[tuple[str, str, str]]:
    """(what, figure, results file name) for each row of the "## Measured" table."""
    rows = []
    for line in section(front, "## Measured").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 3 and not set(cells[0]) <= {"-", " "} and cells[0] != "what":
            link = re.fullmatch(r"\[([\w.]+\.md)\]\(benchmarks/results/([\w.]+\.md)\)", cells[2])
            assert link and link.group(1) == link.group(2), f"row {cells[0]!r}: {cells[2]!r} is not a link to its results file"
            rows.append((cells[0], cells[1], link.group(2)))
    return rows


def figures(text: str) -> list[str]:
    """The figures quoted in ``text``, units attached: "14.5x", "2.6%", "65MB", "0.145s", "0.796"."""
    return [m.group(0).replace(" ", "") for m in FIGURE.finditer(text)]


def test_the_front_page_is_under_its_word_limit(front):
    assert len(front.split()) <= MAX_WORDS


def test_the_two_commands_are_make_demo_and_make_test_and_the_makefile_has_them(front):
    block = re.search(r"```bash\n(.*?)```", section(front, "## Two commands"), flags=re.S).group(1)
    makefile = (REPO / "Makefile").read_text()
    recipes = {m.group(1): m.group(2) for m in re.finditer(r"^([\w-]+):[^\n]*\n((?:\t[^\n]*\n)*)", makefile, flags=re.M)}

    assert [line.split("#")[0].strip() for line in block.strip().splitlines()] == ["make demo", "make test"]
    assert "consortium demo" in recipes["demo"]
    assert "-m pytest" in recipes["test"] and not re.search(r"pytest[^\n]* -m ", recipes["test"])  # the whole suite


def test_every_headline_figure_is_in_the_results_file_it_links(front):
    rows = measured_rows(front)

    assert len(rows) >= 6
    for what, figure, name in rows:
        results = (RESULTS / name).read_text().replace("*", "")
        numbers = set(re.findall(r"\d+(?:\.\d+)?", results))
        ratios = set(re.findall(r"\d+(?:\.\d+)?x", results))
        quoted = figures(figure)
        missing = [f for f in quoted if re.match(r"\d+(?:\.\d+)?", f).group(0) not in numbers
                   or (f.endswith("x") and f not in ratios)]
        assert quoted, f"{what}: no figure"
        assert not missing, f"{what}: {missing} not in benchmarks/results/{name}"


def test_every_results_file_states_its_commit_versions_and_command(front):
    for _, _, name in measured_rows(front):
        first = (RESULTS / name).read_text().splitlines()[0]
        assert re.match(r"^Made by `.+` at commit [0-9a-f]{7,}", first) and "nvflare" in first, name
