"""Each shipped job runs in FLARE's simulator with the consortium's class allow-list enforced."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import JOBS, PROFILES, PROJECT_FILE
from consortium.cli.main import main
from consortium.reports.job_report import GLOBAL, load_results

pytestmark = pytest.mark.simulator
SITES = {"cleveland", "hungary", "switzerland", "va-long-beach"}


def _run(name: str, tmp_path, rounds: int, executor_args: dict | None = None):
    return _run_folder(JOBS / name, tmp_path, rounds, executor_args)


def _run_folder(source, tmp_path, rounds: int, executor_args: dict | None = None):
    job = tmp_path / source.name
    shutil.copytree(source, job)
    server = job / "app" / "config" / "config_fed_server.json"
    config = json.loads(server.read_text())
    next(w for w in config["workflows"] if w["id"] == "scatter_and_gather")["args"]["num_rounds"] = rounds
    server.write_text(json.dumps(config))
    if executor_args:
        client = job / "app" / "config" / "config_fed_client.json"
        config = json.loads(client.read_text())
        for entry in config["executors"]:
            entry["executor"]["args"].update(executor_args)
        client.write_text(json.dumps(config))
    args = ["job", "simulate", str(job), "-w", str(tmp_path / "ws"), "--project", str(PROJECT_FILE), "--profiles", str(PROFILES)]
    assert main(args) == 0
    return load_results(tmp_path / "ws" / "server" / "simulate_job")


# heart_fedavg and heart_fednova run in the POC tests; heart_fedprox and seg_fedavg run in the
# simulator in the HE test below, which checks their plaintext runs as these tests check theirs
def _check_segmentation_run(results, rounds: int) -> None:
    assert results.metric == "dice"
    assert list(results.rounds["round"]) == list(range(rounds))
    # the global model improves on every site's data within a few rounds
    assert results.final_pooled_score > results.rounds["pooled_score"].iloc[0] + 0.15
    # cross-site table: every site's data x {global model, every site's local-only model}
    assert set(results.scores.index) == SITES
    assert set(results.scores.columns) == {GLOBAL} | SITES
    # training loss and Dice reached FLARE experiment tracking (TensorBoard event files at the server)
    assert {p.name for p in (results.workspace / "tb_events").iterdir()} == SITES


@pytest.mark.parametrize("name", ["seg_fedprox", "seg_fednova"])
def test_segmentation_job_runs_in_simulator(name, tmp_path):
    _check_segmentation_run(_run(name, tmp_path, rounds=4), 4)


def test_seg_fedavg_dp_runs_dp_sgd_and_charges_every_site(tmp_path):
    """The imaging job under DP-SGD (Opacus around the MONAI UNet): each site's ledger holds its
    DP-SGD release within the job's ε, cross-site evaluation scores the released DP-SGD models
    (post-processing), and no analytics stream leaves the sites. One round: σ's calibration and the
    UNet's per-example gradients take ~15 s a round on 2 cores (budget: < 60 s for this test)."""
    results = _run("seg_fedavg_dp", tmp_path, rounds=1)

    assert results.metric == "dice"
    assert list(results.rounds["round"]) == [0]
    assert set(results.scores.index) == SITES
    assert set(results.scores.columns) == {GLOBAL} | SITES
    for site in SITES:
        ledger = json.loads((tmp_path / "ws" / site / "privacy" / "ledger.json").read_text())
        (release,) = ledger["jobs"]["simulate_job"]["releases"]
        assert (release["mechanism"], release["clip_norm"], release["rounds"]) == ("dp_sgd", 1.0, 1)
        assert 0 < ledger["epsilon_total"] <= 8.0
    assert not (results.workspace / "tb_events").exists()


# heart_fednova_he: its FedNova weighting under CKKS is checked without FLARE (tests/flare/test_he_round.py)
@pytest.mark.parametrize("name, rounds, tolerance", [("heart_fedprox", 3, 0.002), ("seg_fedavg", 4, 0.005)])
def test_he_job_gives_the_plaintext_numbers(name, rounds, tolerance, tmp_path):
    """The encrypted variant of a job, on the same seeds: the same pooled score every round and
    the same final score at every site, within CKKS precision; the server keeps only ciphertexts.
    The plaintext run is also the shipped job's simulator run. (Personalisation, which happens at
    the sites after training, is left out of both runs.)"""
    no_personalisation = {"personalise_epochs": 0} if name.startswith("seg") else None
    plain = _run(name, tmp_path / "plain", rounds, no_personalisation)
    if name.startswith("seg"):
        _check_segmentation_run(plain, rounds)
    else:
        assert list(plain.rounds["round"]) == list(range(rounds)) and set(plain.scores.index) == SITES
        assert plain.metric == "accuracy" and plain.final_pooled_score >= 0.75
    he = _run(f"{name}_he", tmp_path / "he", rounds, no_personalisation)  # the recipe's HE variant, as shipped

    assert list(he.rounds["sites"]) == [4] * rounds
    assert abs(he.rounds["pooled_score"] - plain.rounds["pooled_score"]).max() <= tolerance
    assert (abs(he.scores[GLOBAL] - plain.scores[GLOBAL]) <= tolerance).all()
    assert sorted(p.name for p in (he.workspace / "encrypted_rounds").glob("round_*.ckks")) == [
        f"round_{r:04d}.ckks" for r in range(rounds)]
    assert not list(he.workspace.rglob("*.pt"))  # no plaintext global model at the server
