"""FedAvg: the sample-weighted mean of the sites' updates (McMahan et al. 2017).

``Delta = sum_k p_k Delta_k`` with ``p_k = n_k / sum_j n_j``; the server then applies
``w <- w_global + Delta`` (FLARE's WEIGHT_DIFF convention, ``Delta_k = w_k - w_global``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

Update = Mapping[str, np.ndarray]


def sample_weights(n_samples: Sequence[int]) -> np.ndarray:
    """``p_k = n_k / sum n``; every count must be a positive integer."""
    n = np.asarray(n_samples, dtype=np.float64)
    if n.size == 0:
        raise ValueError("no sample counts to weight")
    if np.any(~np.isfinite(n)) or np.any(n <= 0):
        raise ValueError(f"sample counts must be positive, got {list(n_samples)}")
    return n / n.sum()


def check_same_layout(updates: Sequence[Update]) -> None:
    """All updates must name the same tensors with the same shapes."""
    first = updates[0]
    for i, u in enumerate(updates[1:], start=1):
        if set(u) != set(first):
            raise ValueError(f"update {i} names {sorted(set(u) ^ set(first))} differently from update 0")
        for k in first:
            if np.shape(u[k]) != np.shape(first[k]):
                raise ValueError(f"update {i} tensor {k!r} has shape {np.shape(u[k])}, update 0 has {np.shape(first[k])}")


def weighted_mean(updates: Sequence[Update], weights: Sequence[float]) -> dict[str, np.ndarray]:
    """``sum_k weights_k * updates_k`` per tensor; weights are used as given (normalise first)."""
    if len(updates) == 0 or len(updates) != len(weights):
        raise ValueError(f"need one weight per update, got {len(updates)} updates and {len(weights)} weights")
    check_same_layout(updates)
    return {
        k: sum(float(w) * np.asarray(u[k], dtype=np.float64) for u, w in zip(updates, weights, strict=True)).astype(
            np.asarray(updates[0][k]).dtype
        )
        for k in updates[0]
    }
