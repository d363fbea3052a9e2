"""Every committed benchmark results file starts with its provenance (issue 9): the command, the
commit (made from a clean work tree), the date, the CPU cores and the versions of nvflare, torch,
monai and tenseal; and every results file is made by a script that `make bench` runs."""

import re
import subprocess

import pytest

from conftest import REPO, RESULTS

PROVENANCE = re.compile(r"^Made by `(?P<command>[^`]+)` at commit (?P<commit>[0-9a-f]{7,40})(?P<dirty> \(with uncommitted "
                        r"changes\))?, (?P<date>\d{4}-\d\d-\d\d), on (?P<cores>\d+) CPU cores \([^)]+\), Python [\d.]+, "
                        r"(?P<versions>.+)\.$")
FILES = sorted(p.name for p in RESULTS.glob("*.md"))


def first_line(name: str) -> str:
    return (RESULTS / name).read_text().splitlines()[0]


def test_there_are_results_files():
    assert len(FILES) >= 10


@pytest.mark.parametrize("name", FILES)
def test_a_results_file_starts_with_its_provenance(name):
    m = PROVENANCE.match(first_line(name))
    assert m, f"benchmarks/results/{name}: the first line is not its provenance: {first_line(name)[:120]!r}"
    assert not m["dirty"], f"benchmarks/results/{name} was made from a work tree with uncommitted changes"
    for pkg in ("nvflare", "torch", "monai", "tenseal"):
        assert re.search(rf"\b{pkg} \d", m["versions"]), f"benchmarks/results/{name}: no {pkg} version"
    script = re.search(r"benchmarks/(\w+)\.py", m["command"])
    assert script and (REPO / "benchmarks" / f"{script[1]}.py").is_file(), f"{name}: no benchmark script in {m['command']!r}"


@pytest.mark.parametrize("name", FILES)
def test_the_commit_that_made_a_results_file_is_in_the_history(name):
    commit = PROVENANCE.match(first_line(name))["commit"]
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    assert subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=REPO, capture_output=True).returncode == 0, (
        f"benchmarks/results/{name}: commit {commit} is not in this repository's history")


def test_make_bench_regenerates_every_results_file():
    listed = set(re.findall(r'^    "(\w+)",$', (REPO / "benchmarks" / "run_all.py").read_text(), re.M))
    makers = {re.search(r"benchmarks/(\w+)\.py", PROVENANCE.match(first_line(n))["command"])[1] for n in FILES}
    # job_fingerprints compares two runs made at two commits (a refactoring's before and after): not re-made by make bench
    assert makers - {"job_fingerprints"} <= listed
