"""Choosing jobs/seg_fedavg's local epochs and its personalisation epochs without the test split.

Each site's training images are split again (75 % train, 25 % validation; the test split is not
loaded). In process (benchmarks/imaging_inprocess.py: the executor's training, the aggregator's
FedAvg), with the job's other settings and rounds, 5 seeds:

1. local epochs per round, among 1 and 2: the one whose final global model has the highest
   validation Dice at its worst site (the issue's floor is on every site); a tie (within 0.005)
   goes to fewer epochs (less compute at the hospitals);
2. personalisation epochs, among 1, 2, 5, 10, 20 and 40, with the chosen local epochs: the fewest
   whose fine-tuned global model scores at least the local-only model on validation at every site
   (mean over seeds); if none does, the one with the highest mean validation Dice (the rule says
   which of the two applied). The grid ran to 10 at first; on validation no value met the rule
   (10 epochs: 0.983 against local-only 0.991 at cleveland), so it was extended to 20 and 40.

Writes benchmarks/results/imaging_selection.md. Step 2's choice (40) is superseded by
benchmarks/personalisation_selection.py (10 seeds, same rule): on the tighter estimate 40 falls
below the local-only model at cleveland and 60 is the fewest that meets it.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch
from common import size, write_table
from imaging_inprocess import (
    dice_by_site,
    federate,
    fewest_meeting_local,
    job_settings,
    local_only,
    personalised_by_site,
    site_data,
    site_mean,
)

SEEDS = range(size(5, 1))
LOCAL_EPOCHS = size((1, 2), (1,))
PERSONALISE_EPOCHS = size((1, 2, 5, 10, 20, 40), (1,))
TIE = 0.005


def main() -> None:
    torch.set_num_threads(1)
    started = time.perf_counter()
    sites = site_data(validation=True)
    base, rounds, model_args = job_settings()
    names = list(sites)
    glob = {e: [] for e in LOCAL_EPOCHS}  # epochs -> per seed {site: dice}
    local = {e: [] for e in LOCAL_EPOCHS}
    pers = {e: {k: [] for k in PERSONALISE_EPOCHS} for e in LOCAL_EPOCHS}
    models = {e: [] for e in LOCAL_EPOCHS}
    for e in LOCAL_EPOCHS:
        settings = replace(base, epochs=e)
        for seed in SEEDS:
            model = federate(sites, settings, rounds, "fedavg", seed, model_args)
            models[e].append(model)
            glob[e].append(dice_by_site(model, sites))
            local[e].append({n: dice_by_site(local_only(n, s, settings, rounds, seed, model_args), {n: s})[n]
                             for n, s in sites.items()})
            print(f"epochs {e} seed {seed}: global {glob[e][-1]}", flush=True)

    worst = {e: min(site_mean(glob[e], n) for n in names) for e in LOCAL_EPOCHS}
    best_worst = max(worst.values())
    chosen_e = min(e for e in LOCAL_EPOCHS if worst[e] >= best_worst - TIE)
    settings = replace(base, epochs=chosen_e)  # step 2 runs on the chosen local epochs only
    for seed, model in zip(SEEDS, models[chosen_e], strict=True):
        for k in PERSONALISE_EPOCHS:
            pers[chosen_e][k].append(personalised_by_site(model, sites, settings, seed, k))
        means = [round(float(np.mean(list(pers[chosen_e][k][-1].values()))), 3) for k in PERSONALISE_EPOCHS]
        print(f"personalised, seed {seed}: {means}", flush=True)
    chosen_k, beats, rule = fewest_meeting_local(pers[chosen_e], local[chosen_e], names)

    lines = [f"# Choosing seg_fedavg's local epochs and personalisation epochs on a validation split ({rounds} rounds, "
             f"{len(SEEDS)} seeds, mean Dice)", "",
             "Each site's training images split 75/25 into train/validation (the test split is not used); in process, "
             "FedAvg with the job's settings (lr "
             f"{base.lr}, momentum {base.momentum}, batch {base.batch_size}). Rules: local epochs maximise the worst "
             f"site's validation Dice of the global model (ties within {TIE} to fewer); personalisation epochs: the "
             "fewest whose fine-tuned global model is >= the local-only model at every site.", "",
             "| local epochs | model | " + " | ".join(names) + " | worst site | mean |", "| --- | --- |" + " ---: |" * (len(names) + 2)]
    for e in LOCAL_EPOCHS:
        rows = [("global model", glob[e]), ("local-only (own site)", local[e])]
        rows += [(f"personalised, {k} epochs" + (" (>= local-only everywhere)" if beats[k] else ""),
                  pers[e][k]) for k in PERSONALISE_EPOCHS if e == chosen_e]
        for label, runs in rows:
            vals = [site_mean(runs, n) for n in names]
            lines.append(f"| {e} | {label} | " + " | ".join(f"{v:.3f}" for v in vals) + f" | {min(vals):.3f} | {np.mean(vals):.3f} |")
    lines += ["", f"Chosen: **{chosen_e} local epoch(s)** per round, **personalise_epochs {chosen_k}** ({rule}). "
              f"Run time {time.perf_counter() - started:.0f} s.", ""]
    write_table("imaging_selection.md", lines)


if __name__ == "__main__":
    main()
