"""Each shipped job runs in FLARE's simulator with the consortium's class allow-list enforced."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import JOBS, PROJECT_FILE
from consortium.cli.main import main
from consortium.reporting import load_results

pytestmark = pytest.mark.simulator
ROUNDS = 5


@pytest.mark.parametrize("name", ["heart_fedavg", "heart_fedprox", "heart_fednova"])
def test_job_runs_in_simulator(name, tmp_path):
    job = tmp_path / name
    shutil.copytree(JOBS / name, job)
    server = job / "app" / "config" / "config_fed_server.json"
    config = json.loads(server.read_text())
    config["workflows"][1]["args"]["num_rounds"] = ROUNDS
    server.write_text(json.dumps(config))

    rc = main(["simulate", str(job), "-w", str(tmp_path / "ws"), "--project", str(PROJECT_FILE)])

    assert rc == 0
    results = load_results(tmp_path / "ws" / "server" / "simulate_job")
    assert list(results.rounds["round"]) == list(range(ROUNDS))
    assert set(results.per_site.index) == {"cleveland", "hungary", "switzerland", "va-long-beach"}
    assert results.final_pooled_accuracy >= 0.75
