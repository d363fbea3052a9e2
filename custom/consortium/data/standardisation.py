"""Federated feature standardisation from counts, sums and sums of squares.

Each site shares only ``(n, sum_j x_ij, sum_j x_ij^2)`` of its training features; the server pools
them into a global mean and standard deviation. These are aggregates, not rows -- but with very few
rows a sum *is* nearly a row, so a site refuses to share moments of fewer than ``min_count`` rows
(:func:`local_moments`), as FLARE's statistics cleansers do. Pooled logistic regression on
FLamby's heart-disease split, 5 seeds (``benchmarks/heart_standardisation.py``, results in
``benchmarks/results/heart_standardisation.md``): global standardisation 0.799 pooled-test
accuracy, per-site standardisation 0.733 -- the sites' shifts carry signal, so the scaling must be
global.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_STD = 1e-6


@dataclass(frozen=True)
class FeatureMoments:
    """Sufficient statistics of one site's features: count, per-feature sum and sum of squares."""

    n: int
    total: np.ndarray
    total_sq: np.ndarray

    def to_dict(self) -> dict:
        return {"n": int(self.n), "sum": self.total.tolist(), "sum_sq": self.total_sq.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> FeatureMoments:
        return cls(int(d["n"]), np.asarray(d["sum"], dtype=np.float64), np.asarray(d["sum_sq"], dtype=np.float64))


@dataclass(frozen=True)
class Standardiser:
    """``x -> (x - mean) / std`` with the pooled mean and std."""

    mean: np.ndarray
    std: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Standardiser:
        return cls(np.asarray(d["mean"], dtype=np.float64), np.asarray(d["std"], dtype=np.float64))


MIN_COUNT = 10


def local_moments(x: np.ndarray, min_count: int = MIN_COUNT) -> FeatureMoments:
    """A site's contribution: its row count and per-feature sums of ``x`` and ``x**2``.

    Refuses (ValueError) when the site has fewer than ``min_count`` rows or non-finite values.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] < min_count:
        raise ValueError(f"refusing to share feature moments of {x.shape[0]} rows (< min_count={min_count})")
    if not np.all(np.isfinite(x)):
        raise ValueError("refusing to share feature moments: the features contain non-finite values")
    return FeatureMoments(x.shape[0], x.sum(axis=0), (x**2).sum(axis=0))


def pooled_standardiser(moments: list[FeatureMoments]) -> Standardiser:
    """Global mean and (population) std over all sites: mean = S/N, var = Q/N - mean^2.

    A feature that is constant over the pooled data gets std 1 so that it stays finite.
    """
    if not moments:
        raise ValueError("pooled_standardiser needs at least one site's moments")
    widths = {m.total.shape for m in moments} | {m.total_sq.shape for m in moments}
    if len(widths) != 1:
        raise ValueError(f"sites disagree on the number of features: {sorted(widths)}")
    for i, m in enumerate(moments):
        if m.n <= 0 or not (np.all(np.isfinite(m.total)) and np.all(np.isfinite(m.total_sq))):
            raise ValueError(f"moments {i}: n = {m.n} must be positive and sums finite")
    n = sum(m.n for m in moments)
    mean = sum(m.total for m in moments) / n
    var = np.maximum(sum(m.total_sq for m in moments) / n - mean**2, 0.0)
    std = np.sqrt(var)
    return Standardiser(mean, np.where(std < MIN_STD, 1.0, std))
