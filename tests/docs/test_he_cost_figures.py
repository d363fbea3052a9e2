"""The HE cost figures quoted in the data scientist's guide (its "Encrypted aggregation (HE)" section) and
on the front page are those of benchmarks/results/he_cost.md."""

import re

import pytest
from docs_text import README, guide, section

from conftest import RESULTS as RESULTS_DIR
from conftest import flat

RESULTS = RESULTS_DIR / "he_cost.md"


@pytest.fixture(scope="module")
def he_section() -> str:
    return flat(section(guide("data-scientist"), "## Encrypted aggregation (HE)"))


def poc_rows() -> dict[str, list[str]]:
    rows = {}
    for line in RESULTS.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 6 and ("`seg_fedavg" in cells[0] or cells[0].startswith("NVFlare's HE (")):
            rows[re.sub(r"^(plaintext|ours under HE) ", "", cells[0]).split(" (")[0]] = cells[1:]
    return rows


def median(cell: str) -> str:
    return cell.split(" (")[0]


def test_the_poc_round_figures_in_the_guide_are_the_results_file(he_section):
    readme, rows = he_section, poc_rows()
    plain, ours, flare = rows["`seg_fedavg`"], rows["`seg_fedavg_he`"], rows["NVFlare's HE"]
    ratio, spread = re.match(r"^([\d.]+) \(([\d.]+–[\d.]+)\)x$", ours[1]).groups()
    runs = {k: re.search(r"\((.+)\)", v[0])[1] for k, v in (("plain", plain), ("ours", ours))}
    assert f"Our HE round / plaintext round: **{ratio}x** (goal <= 1.3x)" in flat(RESULTS.read_text())
    assert f"plaintext `seg_fedavg` {median(plain[0])} s ({runs['plain']})" in readme
    assert f"ours under HE `seg_fedavg_he` {median(ours[0])} s ({runs['ours']}), **{ratio}x** the plaintext round ({spread}x" in readme
    assert f"in a POC of its own) {median(flare[0])} s ({median(flare[1])}x)" in readme
    assert f"a site spends {median(ours[3])} s a round on HE" in readme
    assert f"the server {median(ours[4])} s reading and adding ciphertexts" in readme
    assert f"{median(ours[2])} s a round under HE against {median(plain[2])} s in plaintext" in readme


def test_the_aggregation_speedups_in_the_guide_are_the_results_file(he_section):
    readme = he_section
    speedups = re.findall(r"\*\*NVFlare / ours\*\* \| \*\*[\d.]+x bytes\*\* \| [\d.]+x \| [\d.]+x \| \*\*([\d.]+)x\*\*",
                          RESULTS.read_text())
    assert len(speedups) == 3
    assert f"aggregates four sites {'x / '.join(speedups)}x faster" in readme


def test_the_front_page_quotes_the_poc_ratio_the_bytes_and_the_aggregation_speedup():
    front, rows = flat(README.read_text()), poc_rows()
    ratio = re.match(r"^([\d.]+) ", rows["`seg_fedavg_he`"][1]).group(1)
    small = next(line for line in RESULTS.read_text().splitlines() if line.startswith("| UNet (8,16,32,64) | 0.041M | ours |"))
    speedup = re.findall(r"\*\*NVFlare / ours\*\* \| \*\*[\d.]+x bytes\*\* \| [\d.]+x \| [\d.]+x \| \*\*([\d.]+)x\*\*",
                         RESULTS.read_text())[0]

    assert (f"POC round {ratio}x the plaintext round; a site's message {small.split('|')[4].strip()} its fp32 bytes; "
            f"the server receives and aggregates four sites {speedup}x faster than NVFlare's HE") in front
