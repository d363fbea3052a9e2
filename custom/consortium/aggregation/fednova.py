"""FedNova's server update (Wang et al. 2020): normalised averaging.

With FLARE's update convention ``u_k = w_k - w_global`` (= ``-Delta_k`` of the paper), each site's
normalised direction is ``d_k = u_k / a_k``; the server moves
``w <- w_global + tau_eff * sum_k p_k d_k`` with ``p_k = n_k / sum n`` and
``tau_eff = sum_k p_k a_k`` (or ``sum_k p_k tau_k``, as the authors' code does with a proximal term).

Contract: every site reports ``n_k`` (samples), ``tau_k`` (local steps) and ``a_k`` (its
normaliser, :mod:`consortium.learning.fednova`); a missing or non-positive value is an error, never
a silent fall-back to FedAvg.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np

from consortium.aggregation.weighted_mean import Update, sample_weights, weighted_mean


class TauEff(StrEnum):
    NORMALISERS = "normalisers"  # tau_eff = sum p_k a_k (the paper)
    STEPS = "steps"  # tau_eff = sum p_k tau_k (the authors' code with a proximal term)


def effective_steps(p: np.ndarray, normalisers: Sequence[float], steps: Sequence[int], rule: TauEff) -> float:
    values = normalisers if rule == TauEff.NORMALISERS else steps
    return float(np.dot(p, np.asarray(values, dtype=np.float64)))


def fednova_update(
    updates: Sequence[Update],
    n_samples: Sequence[int],
    normalisers: Sequence[float],
    steps: Sequence[int],
    rule: TauEff = TauEff.NORMALISERS,
) -> dict[str, np.ndarray]:
    """The global update ``tau_eff * sum_k p_k u_k / a_k`` (add it to the global weights)."""
    k = len(updates)
    if not (len(n_samples) == len(normalisers) == len(steps) == k) or k == 0:
        raise ValueError(
            f"need one n, a and tau per update: {k} updates, {len(n_samples)} n, {len(normalisers)} a, {len(steps)} tau"
        )
    a = np.asarray(normalisers, dtype=np.float64)
    if np.any(~np.isfinite(a)) or np.any(a <= 0):
        raise ValueError(f"FedNova normalisers a_k must be positive, got {list(normalisers)}")
    if any(t < 1 for t in steps):
        raise ValueError(f"local steps tau_k must be >= 1, got {list(steps)}")
    p = sample_weights(n_samples)
    tau_eff = effective_steps(p, a, steps, TauEff(rule))
    return weighted_mean(updates, tau_eff * p / a)


def server_momentum(velocity: Update | None, update: Update, beta: float) -> dict[str, np.ndarray]:
    """Heavy-ball momentum on the server: ``v_t = beta * v_{t-1} + u_t``; the global model moves by
    ``v_t`` (Wang et al. 2020 pair FedNova with server momentum; beta = 0 is plain FedNova)."""
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"server momentum beta must be in [0, 1), got {beta!r}")
    if velocity is None or beta == 0.0:
        return {k: np.array(v, copy=True) for k, v in update.items()}
    if set(velocity) != set(update):
        raise ValueError(f"server momentum: velocity names {sorted(velocity)} differ from the update's {sorted(update)}")
    return {k: (beta * np.asarray(velocity[k]) + np.asarray(update[k])).astype(np.asarray(update[k]).dtype) for k in update}
