"""In-process Fed-Heart-Disease training for the heart benchmarks: pooled, local-only and federated
(FedAvg / FedProx / FedNova) logistic regression with the pure functions of ``consortium.learning``,
``consortium.aggregation`` and ``consortium.data``; no FLARE.

A federated run here does what a heart job does in FLARE, step for step: pooled standardisation
from the sites' moments, the persistor's ``LogisticRegression(init_seed)``, each site's
``train_local`` with the executor's per-(round, site) seed, the update ``w_k - w_global`` with its
``SiteResult``, and the job's ``RoundAggregation`` added to the global weights.

Both of FLamby's metrics are computed over the given evaluation sets: pooled accuracy (correct over
all rows) and mean client accuracy (the mean of the per-site accuracies).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from consortium.aggregation.round import RoundAggregation
from consortium.aggregation.weighting import make_weighting
from consortium.data.heart_disease import N_FEATURES
from consortium.data.standardisation import Standardiser, local_moments, pooled_standardiser
from consortium.learning.fednova import local_normaliser
from consortium.learning.loop import TrainConfig, get_weights, set_weights
from consortium.learning.tabular import LogisticRegression, evaluate, train_local
from consortium.protocol.site_result import SiteResult
from consortium.training_settings import LocalTrainingSettings

Rows = tuple[np.ndarray, np.ndarray]  # (x, y)
Scale = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Accuracy:
    """FLamby's two metrics over a set of sites' evaluation rows."""

    pooled: float  # correct / rows, all sites together
    mean_client: float  # mean over sites of each site's accuracy
    per_site: Mapping[str, float]


def accuracy(model, rows: Mapping[str, Rows], scales: Mapping[str, Scale]) -> Accuracy:
    """``model`` on every site's rows, each scaled by that site's entry in ``scales``."""
    ev = {s: evaluate(model, scales[s](x), y) for s, (x, y) in rows.items()}
    per_site = {s: e.accuracy for s, e in ev.items()}
    pooled = sum(e.correct for e in ev.values()) / sum(e.n for e in ev.values())
    return Accuracy(pooled, float(np.mean(list(per_site.values()))), per_site)


def global_scale(train: Mapping[str, Rows]) -> Standardiser:
    """What FederatedStandardisation computes: the pooled mean/std of every site's training rows."""
    return pooled_standardiser([local_moments(x) for x, _ in train.values()])


def pooled_training(train: Mapping[str, Rows], scales: Mapping[str, Scale], config: TrainConfig, seed: int,
                    checkpoints: Iterable[int]) -> dict[int, LogisticRegression]:
    """Centralised training on the union of the sites' rows (each scaled by its entry in ``scales``),
    one ``train_local`` call of one epoch per epoch; the model after each epoch in ``checkpoints``."""
    x = np.concatenate([scales[s](x) for s, (x, _) in train.items()])
    y = np.concatenate([y for _, y in train.values()])
    return _epochs(x, y, config, seed, checkpoints)


def local_only(rows: Rows, scale: Scale, config: TrainConfig, seed: int, checkpoints: Iterable[int]) -> dict[int, LogisticRegression]:
    """One site alone, scaled by ``scale`` (its own moments)."""
    return _epochs(scale(rows[0]), rows[1], config, seed, checkpoints)


def _epochs(x, y, config: TrainConfig, seed: int, checkpoints: Iterable[int]) -> dict[int, LogisticRegression]:
    marks = sorted(set(checkpoints))
    model, out = LogisticRegression(in_features=N_FEATURES, init_seed=seed), {}
    one_epoch = TrainConfig(epochs=1, lr=config.lr, batch_size=config.batch_size, momentum=config.momentum)
    for epoch in range(1, marks[-1] + 1):
        train_local(model, x, y, one_epoch, seed=seed * 1009 + epoch)
        if epoch in marks:
            out[epoch] = _copy(model)
    return out


def federated(train: Mapping[str, Rows], algorithm: str, settings: LocalTrainingSettings, init_seed: int,
              checkpoints: Iterable[int], scale: Scale | None = None) -> dict[int, LogisticRegression]:
    """A heart job in process: the global model after each round count in ``checkpoints``.

    ``algorithm`` is the aggregator's ("fedavg" or "fednova"; FedProx is "fedavg" with
    ``settings.fedprox_mu``). ``scale`` defaults to :func:`global_scale` of ``train``.
    """
    marks = sorted(set(checkpoints))
    scale = scale if scale is not None else global_scale(train)
    data = {s: (scale(x), y) for s, (x, y) in sorted(train.items())}
    model = LogisticRegression(in_features=N_FEATURES, init_seed=init_seed)
    weights = get_weights(model)
    aggregation = RoundAggregation(make_weighting(algorithm), min_accepted=len(data))
    mu = settings.fedprox_mu
    out = {}
    for round_number in range(marks[-1]):
        aggregation.start(round_number, weights)
        for site, (x, y) in data.items():
            set_weights(model, weights)
            config = settings.train_config(site)
            trained = train_local(model, x, y, config, seed=settings.round_seed(round_number, site), fedprox_mu=mu)
            local = get_weights(model)
            result = SiteResult(n_samples=len(y), local_steps=trained.steps,
                                fednova_a=local_normaliser(trained.steps, config.lr, config.momentum, mu or 0.0))
            reason = aggregation.offer(site, {k: local[k] - weights[k] for k in weights}, result)
            if reason is not None:
                raise RuntimeError(f"round {round_number}: {reason}")
        update, _ = aggregation.close()
        weights = {k: weights[k] + update[k] for k in weights}  # FullModelShareableGenerator's WEIGHT_DIFF rule
        if round_number + 1 in marks:
            set_weights(model, weights)
            out[round_number + 1] = _copy(model)
    return out


def _copy(model: LogisticRegression) -> LogisticRegression:
    clone = LogisticRegression(in_features=N_FEATURES, init_seed=None)
    set_weights(clone, get_weights(model))
    return clone
