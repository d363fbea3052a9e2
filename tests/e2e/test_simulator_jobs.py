"""Each shipped job runs in FLARE's simulator with the consortium's class allow-list enforced."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import JOBS, PROFILES, PROJECT_FILE
from consortium.cli.main import main
from consortium.reporting import GLOBAL, load_results

pytestmark = pytest.mark.simulator
SITES = {"cleveland", "hungary", "switzerland", "va-long-beach"}


def _run(name: str, tmp_path, rounds: int):
    job = tmp_path / name
    shutil.copytree(JOBS / name, job)
    server = job / "app" / "config" / "config_fed_server.json"
    config = json.loads(server.read_text())
    next(w for w in config["workflows"] if w["id"] == "scatter_and_gather")["args"]["num_rounds"] = rounds
    server.write_text(json.dumps(config))
    args = ["simulate", str(job), "-w", str(tmp_path / "ws"), "--project", str(PROJECT_FILE), "--profiles", str(PROFILES)]
    assert main(args) == 0
    return load_results(tmp_path / "ws" / "server" / "simulate_job")


@pytest.mark.parametrize("name", ["heart_fedavg", "heart_fedprox", "heart_fednova"])
def test_heart_job_runs_in_simulator(name, tmp_path):
    results = _run(name, tmp_path, rounds=5)
    assert list(results.rounds["round"]) == list(range(5))
    assert set(results.scores.index) == SITES
    assert results.metric == "accuracy"
    assert results.final_pooled_score >= 0.75


@pytest.mark.parametrize("name", ["seg_fedavg", "seg_fedprox", "seg_fednova"])
def test_segmentation_job_runs_in_simulator(name, tmp_path):
    results = _run(name, tmp_path, rounds=4)
    assert results.metric == "dice"
    assert list(results.rounds["round"]) == list(range(4))
    # the global model improves on every site's data within a few rounds
    assert results.final_pooled_score > results.rounds["pooled_score"].iloc[0] + 0.15
    # cross-site table: every site's data x {global model, every site's local-only model}
    assert set(results.scores.index) == SITES
    assert set(results.scores.columns) == {GLOBAL} | SITES
    # training loss and Dice reached FLARE experiment tracking (TensorBoard event files at the server)
    assert {p.name for p in (results.workspace / "tb_events").iterdir()} == SITES
