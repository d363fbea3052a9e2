"""Hyper-parameters of the heart benchmarks, chosen by 5-fold cross-validation inside the training
rows of FLamby's split (the test rows are never read).

Each centre's 486 training rows are cut into 5 folds (stratified on the label where both classes
have 5 rows or more; switzerland's training rows are all positive, so its folds are plain). For
fold f every site holds out its fold f and trains on the rest, with the pooled standardisation of
the rows it trains on, model and shuffling seeds f: pooled training, FedAvg, FedProx and FedNova as
the FLARE jobs run them (in process, :mod:`heart_training`), and each site alone for the local-only
baseline. The score of a candidate is its pooled validation accuracy (correct over all held-out
rows of the fold) averaged over the 5 folds; a local-only candidate is scored on its own site's
held-out rows, the only data a site alone has. The highest score wins; a tie (to 4 decimals) goes
to the candidate listed first: fewer rounds (epochs), fewer local epochs, smaller lr, smaller mu.

Candidates (batch size 8 and plain SGD throughout, as the jobs; FedNova keeps its job's
heterogeneous local work, site_epochs cleveland 5 / hungary 3 / switzerland 1 / va-long-beach 2,
the scenario it exists for):

* lr 0.01, 0.05, 0.2
* rounds (federated) or epochs (pooled, local-only) 10, 30, 50
* local epochs per round 1, 5 (FedAvg, FedProx)
* FedProx mu 0.01, 0.1, 1

Writes benchmarks/results/heart_selection.md (every candidate's score) and heart_selection.json
(the chosen values, read by heart_accuracy.py and heart_standardisation.py).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field

import numpy as np
import torch
from common import REPO, RESULTS, provenance, size, write_table
from heart_training import accuracy, federated, global_scale, local_only, pooled_training
from sklearn.model_selection import KFold, StratifiedKFold

from consortium.data.heart_disease import CENTRES, load_centre
from consortium.data.standardisation import local_moments, pooled_standardiser
from consortium.learning.loop import TrainConfig
from consortium.training_settings import LocalTrainingSettings

FOLDS = size(5, 2)
FOLD_SEED = 0
BATCH_SIZE = 8
LRS = size((0.01, 0.05, 0.2), (0.05,))
ROUNDS = size((10, 30, 50), (2,))  # federated rounds; epochs for pooled and local-only training
LOCAL_EPOCHS = size((1, 5), (1,))
MUS = size((0.01, 0.1, 1.0), (0.1,))
FEDNOVA_SITE_EPOCHS = {"cleveland": 5, "hungary": 3, "switzerland": 1, "va-long-beach": 2}
# what the other benchmarks read (the committed choice, under --smoke too); what this script writes
SELECTION_FILE = REPO / "benchmarks" / "results" / "heart_selection.json"
WRITTEN_SELECTION = RESULTS / "heart_selection.json"


@dataclass
class Candidate:
    """One setting without its round count; ``scores[r]`` holds (pooled, mean-client) per fold."""

    params: dict
    scores: dict[int, list[tuple[float, float]]] = field(default_factory=dict)

    def add(self, rounds: int, pooled: float, mean_client: float) -> None:
        self.scores.setdefault(rounds, []).append((pooled, mean_client))

    def mean(self, rounds: int) -> tuple[float, float]:
        return tuple(np.mean(self.scores[rounds], axis=0))


def site_folds(y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, validation) row indices of the 5 folds of one site's training rows."""
    _, counts = np.unique(y, return_counts=True)
    if len(counts) > 1 and counts.min() >= FOLDS:
        splitter = StratifiedKFold(FOLDS, shuffle=True, random_state=FOLD_SEED)
    else:
        splitter = KFold(FOLDS, shuffle=True, random_state=FOLD_SEED)
    return list(splitter.split(np.zeros(len(y)), y))


def choose(candidates: list[Candidate]) -> tuple[Candidate, int]:
    """The best (candidate, rounds) by mean pooled validation accuracy; ties to the first listed."""
    order = [(r, c) for r in ROUNDS for c in candidates]  # fewer rounds first, then the candidates' order
    best = max(order, key=lambda rc: (round(rc[1].mean(rc[0])[0], 4), -order.index(rc)))
    return best[1], best[0]


def table(title: str, candidates: list[Candidate], chosen: tuple[Candidate, int], what: str = "rounds") -> list[str]:
    head = f"| {' | '.join(candidates[0].params)} | " + " | ".join(f"{r} {what}" for r in ROUNDS) + " |"
    lines = [f"### {title}", "", head, "| " + " | ".join("---" for _ in range(len(candidates[0].params) + len(ROUNDS))) + " |"]
    for c in candidates:
        cells = []
        for r in ROUNDS:
            p, m = c.mean(r)
            cell = f"{p:.3f} / {m:.3f}"
            cells.append(f"**{cell}**" if (c, r) == chosen else cell)
        lines.append("| " + " | ".join(str(v) for v in c.params.values()) + " | " + " | ".join(cells) + " |")
    return lines + [""]


def main() -> None:
    torch.set_num_threads(1)
    sites = {c: load_centre(c) for c in CENTRES}
    folds = {c: site_folds(s.y_train) for c, s in sites.items()}
    pooled = [Candidate({"lr": lr}) for lr in LRS]
    local = {c: [Candidate({"lr": lr}) for lr in LRS] for c in sites}
    fedavg = [Candidate({"lr": lr, "local epochs": e}) for e, lr in itertools.product(LOCAL_EPOCHS, LRS)]
    fedprox = [Candidate({"lr": lr, "local epochs": e, "mu": mu}) for e, lr, mu in itertools.product(LOCAL_EPOCHS, LRS, MUS)]
    fednova = [Candidate({"lr": lr}) for lr in LRS]

    for f in range(FOLDS):
        train = {c: (s.x_train[folds[c][f][0]], s.y_train[folds[c][f][0]]) for c, s in sites.items()}
        val = {c: (s.x_train[folds[c][f][1]], s.y_train[folds[c][f][1]]) for c, s in sites.items()}
        scale = global_scale(train)
        scales = {c: scale for c in sites}

        def score(cand: Candidate, models: dict, rows=val, by=scales) -> None:
            for r, model in models.items():
                a = accuracy(model, rows, by)
                cand.add(r, a.pooled, a.mean_client)

        for cand in pooled:
            score(cand, pooled_training(train, scales, TrainConfig(lr=cand.params["lr"], batch_size=BATCH_SIZE), f, ROUNDS))
        for c in sites:
            own = pooled_standardiser([local_moments(train[c][0])])
            for cand in local[c]:
                models = local_only(train[c], own, TrainConfig(lr=cand.params["lr"], batch_size=BATCH_SIZE), f, ROUNDS)
                score(cand, models, rows={c: val[c]}, by={c: own})
        for cand in fedavg + fedprox:
            settings = LocalTrainingSettings(epochs=cand.params["local epochs"], lr=cand.params["lr"], batch_size=BATCH_SIZE,
                                             fedprox_mu=cand.params.get("mu"), seed=f)
            score(cand, federated(train, "fedavg", settings, init_seed=f, checkpoints=ROUNDS, scale=scale))
        for cand in fednova:
            settings = LocalTrainingSettings(site_epochs=FEDNOVA_SITE_EPOCHS, lr=cand.params["lr"], batch_size=BATCH_SIZE, seed=f)
            score(cand, federated(train, "fednova", settings, init_seed=f, checkpoints=ROUNDS, scale=scale))
        print(f"fold {f + 1}/{FOLDS} done", flush=True)

    best = {"pooled": choose(pooled), "fedavg": choose(fedavg), "fedprox": choose(fedprox), "fednova": choose(fednova)}
    best_local = {c: choose(cands) for c, cands in local.items()}
    chosen = {
        "batch_size": BATCH_SIZE,
        "pooled": {"lr": best["pooled"][0].params["lr"], "epochs": best["pooled"][1]},
        "local_only": {c: {"lr": cand.params["lr"], "epochs": r} for c, (cand, r) in best_local.items()},
        "fedavg": {"lr": best["fedavg"][0].params["lr"], "epochs": best["fedavg"][0].params["local epochs"],
                   "rounds": best["fedavg"][1]},
        "fedprox": {"lr": best["fedprox"][0].params["lr"], "epochs": best["fedprox"][0].params["local epochs"],
                    "fedprox_mu": best["fedprox"][0].params["mu"], "rounds": best["fedprox"][1]},
        "fednova": {"lr": best["fednova"][0].params["lr"], "site_epochs": FEDNOVA_SITE_EPOCHS, "rounds": best["fednova"][1]},
    }
    WRITTEN_SELECTION.write_text(json.dumps({**chosen, "made_by": provenance()[-1]}, indent=2) + "\n")

    lines = ["# Federated Heart Disease: hyper-parameters chosen by 5-fold cross-validation inside the training rows", "",
             "Every cell: mean over the 5 folds of the pooled validation accuracy / the mean client validation accuracy "
             "(local-only: the site's own held-out rows). Chosen (bold): the highest pooled validation accuracy; ties "
             "to fewer rounds, fewer local epochs, smaller lr, smaller mu. Batch size 8, plain SGD. The test rows are "
             "not used. Protocol: `benchmarks/heart_selection.py` docstring.", "",
             "Chosen:", ""]
    lines += [f"- pooled training: lr {chosen['pooled']['lr']}, {chosen['pooled']['epochs']} epochs",
              f"- FedAvg: lr {chosen['fedavg']['lr']}, {chosen['fedavg']['epochs']} local epoch(s), {chosen['fedavg']['rounds']} rounds",
              f"- FedProx: lr {chosen['fedprox']['lr']}, {chosen['fedprox']['epochs']} local epoch(s), mu "
              f"{chosen['fedprox']['fedprox_mu']}, {chosen['fedprox']['rounds']} rounds",
              f"- FedNova: lr {chosen['fednova']['lr']}, site_epochs {FEDNOVA_SITE_EPOCHS}, {chosen['fednova']['rounds']} rounds",
              "- local only: " + ", ".join(f"{c} lr {v['lr']}, {v['epochs']} epochs" for c, v in chosen["local_only"].items()), ""]
    lines += table("Pooled (centralised) training", pooled, best["pooled"], "epochs")
    lines += table("FedAvg", fedavg, best["fedavg"])
    lines += table("FedProx", fedprox, best["fedprox"])
    lines += table("FedNova (site_epochs 5 / 3 / 1 / 2)", fednova, best["fednova"])
    for c, cands in local.items():
        lines += table(f"Local only: {c} (its own held-out rows)", cands, best_local[c], "epochs")
    write_table("heart_selection.md", lines)


if __name__ == "__main__":
    main()
