"""A poisoning site on heart disease: does a robust rule hold, and does the alert fire on it?

Four real hospitals, FedAvg's settings from jobs/heart_fedavg (model, lr, epochs, batch, rounds),
federated standardisation, in process with the same pure functions the FLARE adapters call
(``consortium.aggregation.round.RoundAggregation``). Hungary is the poisoner: every round it sends
its honest update sign-flipped and scaled x50. Rules: FedAvg's mean (no defence), coordinate
median, trimmed mean (trim 1), median-norm clipping, Krum (f = 1 needs 5 sites: refused with 4),
and the clean run (no poisoner). 5 seeds; pooled-test accuracy and mean client accuracy of the
final model; the alert (robust z 3.5 on log-norms and directions) counted per site.

    .venv/bin/python benchmarks/poisoning.py
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch
from common import JOBS, mean_std, size, write_table

from consortium.aggregation.robust import make_robust_rule
from consortium.aggregation.round import RoundAggregation
from consortium.aggregation.weighting import FedAvgWeighting
from consortium.data.heart_disease import load_centre
from consortium.data.standardisation import local_moments, pooled_standardiser
from consortium.learning.loop import TrainConfig, get_weights, set_weights
from consortium.learning.tabular import LogisticRegression, evaluate, train_local
from consortium.protocol.site_result import SiteResult
from consortium.training_settings import LocalTrainingSettings

SITES = ("cleveland", "hungary", "switzerland", "va-long-beach")
POISONER, SCALE = "hungary", -50.0
SEEDS = range(size(5, 1))
RULES = size(("mean", "median", "trimmed_mean", "norm_clip", "krum"), ("median",))


def job_settings() -> tuple[LocalTrainingSettings, int, dict]:
    config = JOBS / "heart_fedavg" / "app" / "config"
    client = json.loads((config / "config_fed_client.json").read_text())["executors"][0]["executor"]["args"]
    server = json.loads((config / "config_fed_server.json").read_text())
    rounds = next(w for w in server["workflows"] if w["id"] == "scatter_and_gather")["args"]["num_rounds"]
    training = {k: v for k, v in client.items() if k not in ("model_path", "model_args", "centre", "data_path")}
    return LocalTrainingSettings.from_args(training), size(rounds, 1), client.get("model_args") or {}


def run(rule: str, poisoned: bool, seed: int, data, settings: LocalTrainingSettings, rounds: int, model_args: dict,
        exclude: bool = False):
    try:
        if rule == "mean":
            combine = make_robust_rule("held_mean") if exclude else None
        else:
            combine = make_robust_rule(rule, trim=1, krum_f=1, sites=len(SITES))
    except ValueError as e:
        return None, str(e)
    torch.manual_seed(seed)
    model = LogisticRegression(**(model_args | {"init_seed": seed}))
    rnd = RoundAggregation(FedAvgWeighting(), rule=combine, exclude_alerted=exclude)
    alerted = dict.fromkeys(SITES, 0)
    for r in range(rounds):
        start = get_weights(model)
        rnd.start(r, start)
        for site in SITES:
            x, y, _, _ = data[site]
            local = LogisticRegression(**model_args)
            set_weights(local, start)
            config: TrainConfig = settings.train_config(site)
            train_local(local, x, y, config, seed=settings.round_seed(r, site) + seed, fedprox_mu=settings.fedprox_mu)
            update = {k: v - start[k] for k, v in get_weights(local).items()}
            if poisoned and site == POISONER:
                update = {k: (SCALE * v).astype(v.dtype) for k, v in update.items()}
            reason = rnd.offer(site, update, SiteResult(n_samples=len(y)))
            if reason is not None:
                raise RuntimeError(reason)
        combined, record = rnd.close()
        for site in record.alerts:
            alerted[site] += 1
        set_weights(model, {k: start[k] + combined[k] for k in start})
    scores = {site: evaluate(model, data[site][2], data[site][3]) for site in SITES}
    pooled = sum(s.correct for s in scores.values()) / sum(s.n for s in scores.values())
    return (pooled, float(np.mean([s.accuracy for s in scores.values()])), alerted), None


def main() -> int:
    settings, rounds, model_args = job_settings()
    splits = {site: load_centre(site) for site in SITES}
    scaler = pooled_standardiser([local_moments(s.x_train) for s in splits.values()])
    data = {site: (scaler(s.x_train), s.y_train, scaler(s.x_test), s.y_test) for site, s in splits.items()}
    rows = []
    cases = ([("mean", False, False, "clean run (no poisoner), FedAvg")] + [(r, True, False, r) for r in RULES]
             + [("mean", True, True, "mean, alerted site excluded each round"),
                ("mean", False, True, "clean run, alerted site excluded each round")])
    for rule, poisoned, exclude, label in cases:
        outs = [run(rule, poisoned, seed, data, settings, rounds, model_args, exclude) for seed in SEEDS]
        if outs[0][0] is None:
            rows.append(f"| {label} | refused: {outs[0][1]} | | | |")
            continue
        pooled = [o[0][0] for o in outs]
        client = [o[0][1] for o in outs]
        poisoner_alerts = [o[0][2][POISONER] for o in outs]
        honest_alerts = sum(o[0][2][s] for o in outs for s in SITES if s != POISONER)
        rows.append(f"| {label} | {mean_std(pooled)} | {mean_std(client)} | "
                    f"{min(poisoner_alerts)}–{max(poisoner_alerts)} of {rounds} | {honest_alerts} |")
        print(rows[-1], flush=True)
    write_table("poisoning.md", [
        f"# A poisoning site on heart disease ({POISONER} sends its update x{SCALE:g} every round)",
        "",
        f"FedAvg settings of jobs/heart_fedavg ({rounds} rounds, lr {settings.lr}, {settings.epochs} local epoch(s), "
        f"batch {settings.batch_size}), global standardisation, FLamby's split; {len(SEEDS)} seeds (mean ± std).",
        "In process with the aggregation code the FLARE aggregator runs. Alerts: robust z-score 3.5 on the",
        "sites' log update norms and cosines to the last global update, per round.",
        "",
        "| rule | pooled-test accuracy | mean client accuracy | rounds the poisoner alerted (min–max over seeds) "
        "| alerts on honest sites (all seeds, rounds) |",
        "| --- | ---: | ---: | ---: | ---: |",
        *rows,
    ])
    return 0


if __name__ == "__main__":
    sys.exit(main())
