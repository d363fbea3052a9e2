"""Why the heart jobs standardise globally: pooled (centralised) logistic regression on FLamby's
split with the features scaled by the pooled moments of all training rows (what
FederatedStandardisation computes) against each site's rows scaled by that site's own moments
(FLamby's per-centre normalisation), 5 seeds, both of FLamby's metrics on the 254 test rows.

Learning rate and epochs are pooled training's, chosen by cross-validation inside the training rows
(benchmarks/results/heart_selection.json, made by heart_selection.py). Writes
benchmarks/results/heart_standardisation.md; the README and ``consortium.data.standardisation``
quote it.
"""

from __future__ import annotations

import json

import torch
from common import mean_std, size, write_table
from heart_selection import SELECTION_FILE
from heart_training import accuracy, global_scale, pooled_training

from consortium.data.heart_disease import CENTRES, load_centre
from consortium.data.standardisation import local_moments, pooled_standardiser
from consortium.learning.loop import TrainConfig

SEEDS = range(size(5, 1))


def main() -> None:
    torch.set_num_threads(1)
    chosen = json.loads(SELECTION_FILE.read_text())
    lr, epochs, batch = chosen["pooled"]["lr"], chosen["pooled"]["epochs"], chosen["batch_size"]
    sites = {c: load_centre(c) for c in CENTRES}
    train = {c: (s.x_train, s.y_train) for c, s in sites.items()}
    test = {c: (s.x_test, s.y_test) for c, s in sites.items()}
    scalings = {
        "global (pooled moments of all training rows)": {c: global_scale(train) for c in sites},
        "per site (each site's own training moments)": {c: pooled_standardiser([local_moments(x)]) for c, (x, _) in train.items()},
    }
    rows = []
    for name, scales in scalings.items():
        runs = [accuracy(pooled_training(train, scales, TrainConfig(lr=lr, batch_size=batch), seed, [epochs])[epochs], test, scales)
                for seed in SEEDS]
        pooled, mean_client = [a.pooled for a in runs], [a.mean_client for a in runs]
        rows.append(f"| {name} | {mean_std(pooled)} | {mean_std(mean_client)} | {' '.join(f'{x:.3f}' for x in pooled)} |")
        print(rows[-1], flush=True)
    lines = ["# Federated Heart Disease: global vs per-site standardisation, pooled logistic regression, 5 seeds", "",
             f"FLamby's split (254 test rows). Pooled training, lr {lr}, {epochs} epochs, batch {batch} "
             "(chosen by cross-validation inside the training rows: heart_selection.md). Mean ± std over seeds.", "",
             "| standardisation | pooled-test accuracy | mean client accuracy | pooled-test accuracy per seed |",
             "| --- | --- | --- | --- |", *rows, ""]
    write_table("heart_standardisation.md", lines)


if __name__ == "__main__":
    main()
