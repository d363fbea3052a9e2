"""The imaging figures quoted in the data scientist's guide ("### Imaging") and on the front page are those
of the committed results files that the benchmark scripts write (benchmarks/results/imaging_segmentation.md,
personalisation_selection.md, fednova_imaging.md, fednova_diagnosis.md)."""

import re

import pytest
from docs_text import README, guide, section

from conftest import JOBS, RESULTS, flat

SITES = ("cleveland", "hungary", "switzerland", "va-long-beach")


def table_means(results_file: str, after: str) -> dict[str, tuple[str, ...]]:
    """Row label -> the means of its "mean ± std" cells (bold or not), in the first table after the
    line starting with ``after``."""
    lines = (RESULTS / results_file).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(after))
    rows, seen = {}, False
    for line in lines[start + 1:]:
        if not line.startswith("|"):
            if seen:
                break
            continue
        seen = True
        cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
        found = tuple(m for c in cells[1:] for m in re.findall(r"^(\d\.\d{3}) ± \d\.\d{3}$", c))
        if found:
            rows[cells[0]] = found
    return rows


@pytest.fixture(scope="module")
def readme() -> str:
    """The guide's imaging section, flattened (the fixture keeps its old name: the text it reads moved)."""
    return flat(section(guide("data-scientist"), "### Imaging"))


def test_own_site_figures_in_readme_are_the_results_file(readme):
    rows = table_means("imaging_segmentation.md", "## On each site's own test images")
    global_, personalised, own, cross = rows["mean over sites"]

    assert (f"global model {global_}, personalised {personalised}, each site's local-only model {own} on its own "
            f"site ({cross} averaged over the four sites)") in readme


def test_global_model_on_its_weakest_sites_in_readme_is_the_results_file(readme):
    rows = table_means("imaging_segmentation.md", "## On each site's own test images")

    assert f"weakest sites are hungary {rows['hungary'][0]} and va-long-beach (inverted contrast) {rows['va-long-beach'][0]}" in readme
    assert sorted(rows[s][0] for s in SITES)[:2] == sorted([rows["hungary"][0], rows["va-long-beach"][0]])


def test_the_sites_where_personalisation_falls_short_in_readme_are_the_results_files(readme):
    rows = table_means("imaging_segmentation.md", "## On each site's own test images")
    short = [s for s in SITES if float(rows[s][1]) < float(rows[s][2])]  # personalised < local-only on its own site

    if short:
        assert f"the personalised model is below the local-only model at {' and '.join(short)}" in readme
    else:
        assert "the personalised model is at least as good as the local-only model at every site" in readme
    cleveland = rows["cleveland"]
    assert f"at cleveland {cleveland[1]} against {cleveland[2]}" in readme


def selection_rows() -> tuple[dict[str, list[str]], int]:
    """personalisation_selection.md: model row -> its cells, and the chosen personalise_epochs."""
    rows, chosen = {}, None
    for line in (RESULTS / "personalisation_selection.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 7:
            rows[cells[0].split(" (")[0]] = cells[1:]
        m = re.search(r"Chosen: \*\*personalise_epochs (\d+)\*\*", line)
        if m:
            chosen = int(m.group(1))
    return rows, chosen


def test_the_jobs_personalisation_epochs_are_the_validation_choice_and_the_readme_quotes_it(readme):
    import json

    rows, chosen = selection_rows()
    client = json.loads((JOBS / "seg_fedavg" / "app" / "config" / "config_fed_client.json").read_text())
    assert client["executors"][0]["executor"]["args"]["personalise_epochs"] == chosen
    assert f"`personalise_epochs`, {chosen} in `jobs/seg_fedavg`" in readme
    local, first, picked = (rows[k][0] for k in ("local-only", "personalised, 40 epochs", f"personalised, {chosen} epochs"))
    assert (f"on validation at cleveland 40 epochs give {first} against the local-only model's {local}, "
            f"and {chosen} epochs {picked}") in readme
    below = next(re.search(r"\((\d+) below\)", line).group(1)  # paired table: seeds where the choice is below, cleveland
                 for line in (RESULTS / "personalisation_selection.md").read_text().splitlines()
                 if line.startswith(f"| {chosen} |"))
    assert f"where {below} of 10 seeds are below there" in flat(readme)


@pytest.mark.parametrize("work", ["1/2/5/10", "10/5/2/1"])
def test_fednova_imaging_figures_in_readme_are_the_results_file(readme, work):
    rows = table_means("fednova_imaging.md", f"## Local epochs {work}")
    quoted = ", ".join(f"{algo} {rows[algo][0]}" for algo in ("FedAvg", "FedProx", "FedNova"))

    assert f"{work} (cleveland, hungary, switzerland, va-long-beach), final mean Dice {quoted}" in readme or (
        f"{work}, final mean Dice {quoted}" in readme)


def test_the_site_each_rule_loses_in_readme_is_the_results_file(readme):
    first = table_means("fednova_imaging.md", "## Local epochs 1/2/5/10")
    reversed_ = table_means("fednova_imaging.md", "## Local epochs 10/5/2/1")

    assert first["FedNova"][-1] == "0.000" and reversed_["FedAvg"][-1] == "0.000"  # "scores 0 Dice there", twice
    assert f"FedNova keeps every site at {min(reversed_['FedNova'][1:])} or more" in readme
    gaps = [float(t["FedNova"][0]) - float(t["FedAvg"][0]) for t in (reversed_, first)]
    assert f"reversed assignment ({gaps[0]:+.3f}) and not in the first ({gaps[1]:+.3f})".replace("-", "−") in readme


def test_the_shares_of_the_combined_step_in_readme_are_the_diagnosis_file(readme):
    rows = {}
    for line in (RESULTS / "fednova_diagnosis.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and " / " in cells[5] and "±" in cells[5]:
            rows[(cells[0].split(" (")[0], cells[1])] = float(cells[5].split("/")[-1])  # va-long-beach's share

    assert f"its share of the combined step falls to {rows[('as benchmarked', 'FedNova')]:.0%}" in readme
    assert f"the 1-epoch inverted-contrast site's share is {rows[('reversed', 'FedAvg')]:.0%}" in readme


def test_the_front_page_quotes_the_own_site_means():
    global_, personalised, own, _ = table_means("imaging_segmentation.md", "## On each site's own test images")["mean over sites"]

    assert (f"global model {global_}, personalised {personalised}, each site's local-only model {own}"
            in flat(README.read_text()))
