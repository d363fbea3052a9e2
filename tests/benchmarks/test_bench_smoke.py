"""`make bench-smoke` (``pytest -m bench``; not in `make test`, whose 15 minutes it would double):
every benchmark of `make bench` runs end to end at its
smallest size (``--smoke``), in its own process, and writes its table, provenance first, to a
temporary folder; benchmarks/results/ is left as it was. A benchmark that rots (an import moved,
an argument FLARE refuses, a job it cannot build) fails here instead of at the next `make bench`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "benchmarks"
sys.path.insert(0, str(BENCH))
from run_all import BENCHMARKS  # noqa: E402

OUTPUTS = {name: (f"{name}.md",) for name in BENCHMARKS} | {"heart_selection": ("heart_selection.md", "heart_selection.json")}


def _committed_state() -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (BENCH / "results").iterdir()}


@pytest.mark.bench
@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_smoke(name: str, tmp_path: Path) -> None:
    before = _committed_state()
    env = dict(os.environ, BENCH_SMOKE="1", BENCH_RESULTS=str(tmp_path))
    run = subprocess.run([sys.executable, str(BENCH / f"{name}.py")], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, f"{name} --smoke exited {run.returncode}:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"
    for out in OUTPUTS[name]:
        written = tmp_path / out
        assert written.is_file(), f"{name} --smoke wrote no {out} in $BENCH_RESULTS ({sorted(os.listdir(tmp_path))})"
        if out.endswith(".md"):
            assert written.read_text().startswith("Made by `"), f"{out}: no provenance line first"
    assert _committed_state() == before, f"{name} --smoke changed benchmarks/results/"


def test_smoke_covers_every_benchmark() -> None:
    """Every benchmark script is in `make bench` (run_all), so the smoke test above runs it too."""
    helpers = {"common", "run_all", "heart_training", "imaging_inprocess", "job_fingerprints"}
    scripts = {p.stem for p in BENCH.glob("*.py")} - helpers
    assert scripts == set(BENCHMARKS), f"not in run_all.BENCHMARKS: {sorted(scripts - set(BENCHMARKS))}"
