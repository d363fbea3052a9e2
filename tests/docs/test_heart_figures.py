"""The heart-disease figures quoted in the data scientist's guide, on the front page and in docstrings are
those of the committed results files that the benchmark scripts write (benchmarks/results/heart_*.md)."""

import re

import pytest
from docs_text import README, guide, section

import consortium.data.standardisation as standardisation
from conftest import RESULTS, flat


def means(results_file: str) -> dict[str, tuple[str, ...]]:
    """Row label -> the means of its "mean ± std" cells, as printed (e.g. "0.799")."""
    rows = {}
    for line in (RESULTS / results_file).read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        found = tuple(m for c in cells[1:] for m in re.findall(r"^(\d\.\d{3}) ± \d\.\d{3}$", c))
        if line.startswith("|") and found:
            rows[cells[0]] = found
    return rows


def row(rows: dict, prefix: str) -> tuple[str, ...]:
    matches = [v for k, v in rows.items() if k.startswith(prefix)]
    assert len(matches) == 1, f"one row starting with {prefix!r} expected, found {len(matches)}"
    return matches[0]


@pytest.fixture(scope="module", params=["guide", "front page"])
def readme(request) -> str:
    """Where the accuracy figures are quoted: the guide's "## Data" section, and the front page."""
    if request.param == "guide":
        return flat(section(guide("data-scientist"), "## Data"))
    return flat(README.read_text())


def test_standardisation_figures_in_readme_and_docstring_are_the_results_file():
    rows = means("heart_standardisation.md")
    global_, per_site = row(rows, "global")[0], row(rows, "per site")[0]
    quoted = f"global standardisation {global_} pooled-test accuracy, per-site standardisation {per_site}"

    assert quoted in flat(section(guide("data-scientist"), "### FedNova"))
    assert quoted in flat(standardisation.__doc__)


@pytest.mark.parametrize(("label", "prefix"), [("pooled training", "pooled (centralised)"), ("FedAvg", "FedAvg"),
                                               ("FedProx", "FedProx"), ("FedNova", "FedNova")])
def test_heart_accuracy_figures_in_readme_are_the_results_file(readme, label, prefix):
    pooled, mean_client = row(means("heart_accuracy.md"), prefix)

    assert f"{label} {pooled} / {mean_client}" in readme
