"""Why FedNova scores 0 Dice at va-long-beach in benchmarks/fednova_imaging.py: which site's work
moves the global model, under FedAvg and FedNova, with the heterogeneous local work of that
benchmark, with equal work, and with the work reversed.

va-long-beach is the inverted-contrast site: a model trained only on the other three sites scores 0
there (benchmarks/results/imaging_segmentation.md), so the global model serves it only when its
update carries enough of the combined step. For each site this reports the final global model's
Dice and the site's mean share of the combined update over the rounds,
``c_k ||u_k|| / sum_j c_j ||u_j||`` with FedAvg's ``c_k = n_k`` and FedNova's ``c_k = n_k / a_k``
(the factors common to all sites cancel). Same in-process training and aggregation as
benchmarks/fednova_imaging.py (64×64 images, 10 rounds), fewer seeds. Writes
benchmarks/results/fednova_diagnosis.md.

    .venv/bin/python benchmarks/fednova_diagnosis.py
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch
from common import mean_std, size, write_table
from fednova_imaging import ROUNDS, SIZE
from imaging_inprocess import dice_by_site, federate, job_settings, site_data

SEEDS = range(size(2, 1))
WORK = {  # local epochs per round, the sites in the profiles' order (cleveland, hungary, switzerland, va-long-beach)
    "as benchmarked (1/2/5/10)": (1, 2, 5, 10),
    "equal (2/2/2/2)": (2, 2, 2, 2),
    "reversed (10/5/2/1)": (10, 5, 2, 1),
}
ALGOS = ("fedavg", "fednova")


def main() -> None:
    torch.set_num_threads(1)
    started = time.perf_counter()
    sites = site_data(size=SIZE)
    base, job_rounds, model_args = job_settings("seg_fedavg")
    rounds = min(ROUNDS, job_rounds)
    names = list(sites)
    rows = []
    for label, epochs in WORK.items():
        site_epochs = dict(zip(names, epochs, strict=True))
        for algo in ALGOS:
            dice = {s: [] for s in names}
            share = {s: [] for s in names}
            for seed in SEEDS:
                per_round: dict[int, dict[str, float]] = {}

                def weigh(r, name, update, result, per_round=per_round, algo=algo):
                    norm = float(np.sqrt(sum(float(np.sum(np.square(v, dtype=np.float64))) for v in update.values())))
                    c = result.n_samples / (result.fednova_a if algo == "fednova" else 1.0)
                    per_round.setdefault(r, {})[name] = c * norm

                settings = replace(base, epochs=1, site_epochs=site_epochs, fedprox_mu=None)
                model = federate(sites, settings, rounds, algo, seed, model_args, on_update=weigh)
                for s, d in dice_by_site(model, sites).items():
                    dice[s].append(d)
                for s in names:
                    share[s].append(np.mean([pr[s] / sum(pr.values()) for pr in per_round.values()]))
                print(f"{label} {algo} seed {seed}: " + " ".join(f"{s} {dice[s][-1]:.3f}" for s in names), flush=True)
            rows.append((label, algo, dice, share))
    seconds = time.perf_counter() - started

    head = "| local work | algorithm | " + " | ".join(f"{s}: Dice / share" for s in names) + " | mean Dice |"
    lines = [f"# FedNova at the inverted-contrast site: Dice and each site's share of the combined update, "
             f"{rounds} rounds, {SIZE}×{SIZE} images, {len(SEEDS)} seeds (mean ± std)", "",
             "Share: the site's weighted update norm over the sum of all four (mean over rounds and seeds); "
             "FedAvg weighs by samples, FedNova by samples over the site's normaliser a_k (momentum "
             f"{base.momentum}, lr {base.lr}, batch {base.batch_size}). va-long-beach is the inverted-contrast site.", "",
             head, "| --- | --- |" + " ---: |" * (len(names) + 1)]
    for label, algo, dice, share in rows:
        cells = [f"{mean_std(dice[s])} / {np.mean(share[s]):.2f}" for s in names]
        mean = mean_std([np.mean([dice[s][i] for s in names]) for i in range(len(SEEDS))])
        lines.append(f"| {label} | {'FedNova' if algo == 'fednova' else 'FedAvg'} | " + " | ".join(cells) + f" | {mean} |")
    lines += ["", f"Run time {seconds:.0f} s (one thread, on a host shared with other work).", ""]
    write_table("fednova_diagnosis.md", lines)


if __name__ == "__main__":
    main()
