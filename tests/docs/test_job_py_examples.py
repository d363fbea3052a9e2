"""The data scientist's guide's job.py examples run as written (their own ``--rounds`` keeps them short): the heart
one, a FedProx variant built in Python (μ 0.5 where jobs/heart_fedprox has 1.0), runs in
ConsortiumSimEnv to a result that the command its last line names (`consortium job report`) reads; the imaging one is exported with
FLARE's ``--export`` flag (an imaging simulation takes minutes) and passes the consortium's job check."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from docs_text import guide, section

from conftest import PROJECT_FILE
from consortium.cli.main import main
from consortium.jobs.validate import AllowList, check_job
from consortium.provisioning.project import Project
from consortium.reports.job_report import load_results

pytestmark = pytest.mark.simulator
SECTION = "## A `job.py`: the jobs as FLARE recipes"
SITES = {"cleveland", "hungary", "switzerland", "va-long-beach"}


def guide_examples() -> dict[str, str]:
    """The section's Python blocks, by the recipe they build."""
    blocks = re.findall(r"```python\n(.*?)```", section(guide("data-scientist"), SECTION), flags=re.S)
    return {family: next(b for b in blocks if f"{family}Recipe(" in b) for family in ("Heart", "Imaging")}


def _run(script: str, tmp_path: Path, *args: str) -> str:
    path = tmp_path / "job.py"
    path.write_text(script)
    env = dict(os.environ, NVFLARE_SIMULATOR_WORKSPACE_ROOT=str(tmp_path / "simulation"))
    done = subprocess.run([sys.executable, str(path), *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_guide_heart_example_runs_a_fedprox_variant_to_a_reportable_result(tmp_path):
    out = _run(guide_examples()["Heart"], tmp_path, "--rounds", "2")

    result = Path(re.search(r"^result: (.+)$", out, flags=re.M).group(1))
    assert result == tmp_path / "simulation" / "heart_fedprox_mu05" / "server" / "simulate_job"
    results = load_results(result)
    assert list(results.rounds["round"]) == [0, 1]
    assert set(results.scores.index) == SITES and results.metric == "accuracy"
    client = json.loads((result / "app_server" / "config" / "config_fed_client.json").read_text())
    assert client["executors"][0]["executor"]["args"]["fedprox_mu"] == 0.5
    command = re.search(r"# then: consortium (.+?) <that folder>", guide_examples()["Heart"]).group(1).split()
    assert command == ["job", "report"]
    assert main([*command, str(result)]) == 0
    assert (result / "report.md").is_file()


def test_guide_imaging_example_exports_a_job_the_consortium_admits(tmp_path):
    out = _run(guide_examples()["Imaging"], tmp_path, "--rounds", "3", "--export", "--export-dir", str(tmp_path / "export"))

    assert "result:" not in out  # exported, not run
    job = tmp_path / "export" / "seg_fedprox_mu01"
    project = Project.load(PROJECT_FILE)
    check_job(job, sites=project.clients, allowed=AllowList.of_project(project))
    server = json.loads((job / "app" / "config" / "config_fed_server.json").read_text())
    assert next(w for w in server["workflows"] if w["id"] == "scatter_and_gather")["args"]["num_rounds"] == 3
