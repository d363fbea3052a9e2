"""Federated Heart Disease, pooled-test accuracy, 5 seeds: local-only per site, pooled
(centralised) training, and FedAvg / FedProx run through FLARE's simulator with the shipped jobs.

Writes benchmarks/results/heart_accuracy.md. FLamby's published numbers for comparison: pooled
0.795, FedAvg 0.748, FedProx 0.748, local Cleveland 0.784 / Hungary 0.727 / VA 0.611 /
Switzerland 0.483.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from common import executor_args, job_variant, mean_std, write_table

from consortium.cli.kits import Project
from consortium.cli.main import DEFAULT_PROJECT, simulate
from consortium.data.heart_disease import CENTRES, load_centre
from consortium.data.standardisation import local_moments, pooled_standardiser
from consortium.learning.tabular import LogisticRegression, TrainConfig, evaluate, train_local
from consortium.reporting import load_results

SEEDS = range(5)
EPOCHS = 30  # centralised and local-only: as many passes as the federated jobs' rounds


def pooled_test_accuracy(model, sites, scale) -> float:
    ev = [evaluate(model, scale(s.x_test), s.y_test) for s in sites.values()]
    return sum(e.correct for e in ev) / sum(e.n for e in ev)


def centralised(seed: int, sites) -> tuple[float, dict[str, float]]:
    scale = pooled_standardiser([local_moments(s.x_train) for s in sites.values()])
    x = np.concatenate([scale(s.x_train) for s in sites.values()])
    y = np.concatenate([s.y_train for s in sites.values()])
    model = LogisticRegression(init_seed=seed)
    train_local(model, x, y, TrainConfig(epochs=EPOCHS), seed=seed)
    pooled = pooled_test_accuracy(model, sites, scale)
    local = {}
    for name, s in sites.items():
        own = pooled_standardiser([local_moments(s.x_train)])  # a site alone knows only its own data
        m = LogisticRegression(init_seed=seed)
        train_local(m, own(s.x_train), s.y_train, TrainConfig(epochs=EPOCHS), seed=seed)
        local[name] = pooled_test_accuracy(m, sites, own)
    return pooled, local


def federated(job: str, seed: int, scratch: Path) -> float:
    def server(c):
        c["components"][0]["args"]["model"]["args"]["init_seed"] = seed

    variant = job_variant(job, scratch / f"{job}_{seed}", server, lambda c: executor_args(c).update(seed=seed))
    ws = scratch / f"ws_{job}_{seed}"
    rc = simulate(variant, ws, Project.load(DEFAULT_PROJECT), threads=4)
    if rc != 0:
        raise RuntimeError(f"simulator failed for {job} seed {seed}")
    return load_results(ws / "server" / "simulate_job").final_pooled_score


def main() -> None:
    torch.set_num_threads(1)
    sites = {c: load_centre(c) for c in CENTRES}
    pooled, local = [], {c: [] for c in CENTRES}
    for seed in SEEDS:
        p, loc = centralised(seed, sites)
        pooled.append(p)
        for c, a in loc.items():
            local[c].append(a)
    fed = {"FedAvg": [], "FedProx (mu 0.1)": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in SEEDS:
            fed["FedAvg"].append(federated("heart_fedavg", seed, Path(tmp)))
            fed["FedProx (mu 0.1)"].append(federated("heart_fedprox", seed, Path(tmp)))
            print(f"seed {seed}: FedAvg {fed['FedAvg'][-1]:.3f}  FedProx {fed['FedProx (mu 0.1)'][-1]:.3f}", flush=True)
    rows = [("pooled (centralised) training", pooled)] + [(f"local only: {c}", v) for c, v in local.items()]
    rows += [(f"{k} through FLARE (simulator), 30 rounds", v) for k, v in fed.items()]
    lines = ["# Federated Heart Disease: pooled-test accuracy (254 rows, 4 hospitals), 5 seeds", "",
             "| training | mean ± std | seeds |", "| --- | --- | --- |"]
    lines += [f"| {name} | {mean_std(v)} | {' '.join(f'{x:.3f}' for x in v)} |" for name, v in rows]
    lines += ["", "FLamby (published, 5 seeds): pooled 0.795, FedAvg 0.748, FedProx 0.748, local Cleveland 0.784, "
              "Hungary 0.727, VA 0.611, Switzerland 0.483.", ""]
    write_table("heart_accuracy.md", lines)


if __name__ == "__main__":
    main()
