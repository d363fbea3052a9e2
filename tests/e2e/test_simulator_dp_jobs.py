"""The DP jobs in FLARE's simulator: every site's ledger charged per round within its budget, no
site model released under update-level DP, and a budget refusal that reaches the server."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import JOBS, PROJECT_FILE
from consortium.cli.main import main

pytestmark = pytest.mark.simulator
SITES = ["cleveland", "hungary", "switzerland", "va-long-beach"]


def _job(tmp_path, name: str, rounds: int, **filter_args):
    job = tmp_path / name
    shutil.copytree(JOBS / name, job)
    server_file, client_file = (job / "app" / "config" / f"config_fed_{s}.json" for s in ("server", "client"))
    server = json.loads(server_file.read_text())
    next(w for w in server["workflows"] if w["id"] == "scatter_and_gather")["args"]["num_rounds"] = rounds
    server_file.write_text(json.dumps(server))
    client = json.loads(client_file.read_text())
    client["task_result_filters"][0]["filters"][0]["args"].update(filter_args)
    client_file.write_text(json.dumps(client))
    return job


def _simulate(job, ws) -> int:
    return main(["job", "simulate", str(job), "-w", str(ws), "--project", str(PROJECT_FILE)])


def test_update_level_dp_job_charges_every_site_each_round(tmp_path):
    ws = tmp_path / "ws"
    assert _simulate(_job(tmp_path, "heart_fedavg_dp_update", rounds=3), ws) == 0

    for site in SITES:
        ledger = json.loads((ws / site / "privacy" / "ledger.json").read_text())
        (release,) = ledger["jobs"]["simulate_job"]["releases"]
        assert (release["mechanism"], release["rounds"]) == ("gaussian_update", 3)
        assert 0 < ledger["epsilon_total"] <= 8.0
    progress = [json.loads(line) for line in (ws / "server" / "simulate_job" / "progress.jsonl").read_text().splitlines()]
    assert [r["round"] for r in progress] == [0, 1, 2] and all(len(r["contributors"]) == 4 for r in progress)
    cross = json.loads((ws / "server" / "simulate_job" / "cross_site_val" / "cross_val_results.json").read_text())
    assert all(set(by_model) == {"SRV_persistor"} or all(not k.startswith(tuple(SITES)) for k in by_model)
               for by_model in cross.values())  # no site's local model was released for evaluation


def test_budget_exhaustion_is_refused_at_the_site_and_seen_by_the_server(tmp_path):
    ws = tmp_path / "ws"
    # σ = 2.85 (RDP, δ = 1e-3): one round spends ε 1.02, two 1.53 > the budget 1.5
    _simulate(_job(tmp_path, "heart_fedavg_dp_update", rounds=3, noise_multiplier=2.85, target_epsilon=None,
                   planned_rounds=None, site_epsilon_budget=1.5), ws)

    server_log = (ws / "server" / "log.txt").read_text()
    assert "PRIVACY_REFUSED" in server_log
    for site in SITES:
        ledger = json.loads((ws / site / "privacy" / "ledger.json").read_text())
        assert ledger["epsilon_total"] <= 1.5
