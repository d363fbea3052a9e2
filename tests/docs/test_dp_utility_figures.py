"""The DP figures quoted in the data scientist's guide ("Differential privacy: utility against ε") are those of the
results file that benchmarks/dp_utility.py writes (benchmarks/results/dp_utility.md)."""

from __future__ import annotations

import re

import pytest
from docs_text import README, guide
from docs_text import section as guide_section

from conftest import REPO

RESULTS = REPO / "benchmarks" / "results" / "dp_utility.md"
HEADING = "### Differential privacy: utility against ε"
MECHANISMS = ("DP-SGD", "update-level")


def flat(text: str) -> str:
    return " ".join(text.split())


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


@pytest.fixture(scope="module")
def results() -> str:
    return RESULTS.read_text()


@pytest.fixture(scope="module")
def section() -> str:
    """The guide's DP utility section, up to the next heading."""
    return guide_section(guide("data-scientist"), HEADING)


def measured(results: str) -> dict[tuple[str, str], str]:
    """(mechanism, ε label) -> "pooled / mean client" means, as the results table prints them."""
    out = {}
    for line in results.splitlines():
        row = cells(line)
        if line.startswith("|") and row[0] in MECHANISMS:
            pooled, client = (re.fullmatch(r"(\d\.\d{3}) ± \d\.\d{3}", c).group(1) for c in row[4:6])
            out[row[0], row[1]] = f"{pooled} / {client}"
    return out


def test_the_guide_table_is_the_results_table(results, section):
    table = measured(results)
    lines = [line for line in section.splitlines() if line.startswith("|")]
    epsilons = cells(lines[0])[1:]
    quoted = {}
    for line in lines[2:]:
        row = cells(line)
        mechanism = row[0].split(" (")[0]
        quoted |= {(mechanism, e): v for e, v in zip(epsilons, row[1:], strict=True)}

    assert len(table) == 10
    assert quoted == table


def test_the_goal_verdict_and_gaps_are_the_results_file(results, section):
    verdict, pooled_gap, client_gap = re.search(
        r"Goal: .*?: (met|NOT met) \(pooled-test .*?, (\d+\.\d) points lower; mean client .*?, (\d+\.\d) points lower\)",
        results).groups()

    assert f"of the run without DP: {verdict} (pooled-test {pooled_gap} and mean client {client_gap} points lower)" \
        in flat(section)


def test_flamby_figures_in_the_guide_are_those_beside_the_results(results, section):
    flamby = dict(cells(line) for line in results.splitlines() if re.match(r"\| (no DP|ε = [\d.]+, δ = [\de.-]+) \|", line))
    text = flat(section)

    assert flamby == {"no DP": "0.712", "ε = 1, δ = 1e-3": "0.702", "ε = 0.1, δ = 1e-4": "0.606"}
    assert f"{flamby['no DP']} without DP, {flamby['ε = 1, δ = 1e-3']} at ε = 1 (δ = 1e-3) and " \
           f"{flamby['ε = 0.1, δ = 1e-4']} at ε = 0.1 (δ = 1e-4)" in text


def test_the_quoted_sigma_is_the_results_file(results, section):
    sigma = next(cells(line)[2] for line in results.splitlines() if line.startswith("| update-level | 8 |"))

    assert f"σ = {sigma} at ε = 8" in flat(section)


def test_the_front_page_quotes_dp_sgd_at_epsilon_1_and_the_run_without_dp(results):
    table = measured(results)

    assert f"{table['DP-SGD', '1']}, against {table['DP-SGD', '∞ (no DP)']} without DP" in flat(README.read_text())
