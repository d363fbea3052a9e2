"""Robust combine rules: they need every update of the round at once (``needs_all_updates``) and
bound what one bad or poisoned site can do to the global model.

* coordinate-wise median (Yin et al. 2018): per weight, the median of the sites' values;
* trimmed mean (Yin et al. 2018): per weight, drop the ``trim`` largest and smallest values, average
  the rest (needs n > 2 trim);
* Krum (Blanchard et al. 2017): the one update whose summed squared distance to its n - f - 2
  nearest others is smallest; tolerates f Byzantine sites when n >= 2f + 3 (refused otherwise);
* norm-clipped mean: each update clipped to the round's median L2 norm, then the usual weighted
  mean (Sun et al. 2019, "Can you really backdoor federated learning?").

Median, trimmed mean and Krum ignore the sites' weights (a site's sample count is its own claim);
the clipped mean keeps them. All return the first update's dtypes. Plain functions of a list of
``{name: array}`` updates; :class:`HeldRule` gives them the combine-rule interface of
:mod:`consortium.aggregation.combine`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from consortium.aggregation.checks import update_norm
from consortium.aggregation.weighted_mean import weighted_mean

Update = Mapping[str, np.ndarray]


def _stack(updates: Sequence[Update], name: str) -> np.ndarray:
    return np.stack([np.asarray(u[name], dtype=np.float64) for u in updates])


def _check(updates: Sequence[Update]) -> None:
    if not updates:
        raise ValueError("no updates to combine")
    names = set(updates[0])
    for i, u in enumerate(updates[1:], start=1):
        if set(u) != names:
            raise ValueError(f"update {i} names {sorted(set(u) ^ names)} differently from update 0")


def coordinate_median(updates: Sequence[Update]) -> dict[str, np.ndarray]:
    _check(updates)
    return {k: np.median(_stack(updates, k), axis=0).astype(np.asarray(updates[0][k]).dtype) for k in updates[0]}


def trimmed_mean(updates: Sequence[Update], trim: int) -> dict[str, np.ndarray]:
    _check(updates)
    if not isinstance(trim, int) or trim < 0 or len(updates) <= 2 * trim:
        raise ValueError(f"trimmed mean needs 0 <= trim and more than 2*trim updates, got trim={trim!r} with {len(updates)}")
    out = {}
    for k in updates[0]:
        s = np.sort(_stack(updates, k), axis=0)
        out[k] = s[trim:len(updates) - trim].mean(axis=0).astype(np.asarray(updates[0][k]).dtype)
    return out


def check_krum(n: int, f: int) -> None:
    if not isinstance(f, int) or f < 0:
        raise ValueError(f"krum_f must be an integer >= 0, got {f!r}")
    if n < 2 * f + 3:
        raise ValueError(f"Krum with f={f} needs at least 2f+3 = {2 * f + 3} sites, got {n}")


def krum_index(updates: Sequence[Update], f: int) -> int:
    """Index of the update Krum selects."""
    _check(updates)
    check_krum(len(updates), f)
    flat = np.stack([np.concatenate([np.asarray(u[k], dtype=np.float64).ravel() for k in sorted(u)]) for u in updates])
    d2 = ((flat[:, None, :] - flat[None, :, :]) ** 2).sum(axis=2)
    m = len(updates) - f - 2
    scores = [np.sort(np.delete(d2[i], i))[:m].sum() for i in range(len(updates))]
    return int(np.argmin(scores))


def krum(updates: Sequence[Update], f: int) -> dict[str, np.ndarray]:
    chosen = updates[krum_index(updates, f)]
    return {k: np.array(v, copy=True) for k, v in chosen.items()}


def norm_clipped_mean(updates: Sequence[Update], weights: Sequence[float]) -> dict[str, np.ndarray]:
    """``sum_k w_k clip(u_k, median norm)`` (weights used as given: normalise first)."""
    _check(updates)
    norms = np.array([update_norm(u) for u in updates])
    bound = float(np.median(norms))
    factors = [min(1.0, bound / n) if n > 0 else 1.0 for n in norms]
    return {k: sum(w * f * np.asarray(u[k], dtype=np.float64) for u, w, f in zip(updates, weights, factors, strict=True))
            .astype(np.asarray(updates[0][k]).dtype) for k in updates[0]}


class HeldRule:
    """A combine rule that keeps every update of the round and applies ``combine`` at the end."""

    needs_all_updates = True

    def __init__(self, name: str, combine: Callable[[list[Update], list[float], float], dict[str, np.ndarray]],
                 min_updates: int = 1) -> None:
        self.name, self.combine, self.min_updates = name, combine, min_updates
        self.reset()

    def add(self, update: Update, coefficient: float) -> None:
        self.updates.append({k: np.array(v, copy=True) for k, v in update.items()})
        self.coefficients.append(float(coefficient))

    def result(self, scale: float) -> dict[str, np.ndarray]:
        try:
            if len(self.updates) < self.min_updates:
                raise ValueError(f"{self.name} needs at least {self.min_updates} accepted updates, got {len(self.updates)}")
            return self.combine(self.updates, self.coefficients, scale)
        finally:
            self.reset()

    def drop(self, index: int) -> None:
        """Forget the ``index``-th update added this round (an excluded site)."""
        del self.updates[index], self.coefficients[index]

    def reset(self) -> None:
        self.updates: list[Update] = []
        self.coefficients: list[float] = []


ROBUST_RULES = ("median", "trimmed_mean", "krum", "norm_clip")


def make_robust_rule(rule: str, trim: int = 1, krum_f: int = 1, sites: int | None = None) -> HeldRule:
    """A robust rule by name; Krum's and the trimmed mean's conditions are checked against ``sites``
    (the round's expected number of sites) when given."""
    if rule == "median":
        return HeldRule(rule, lambda us, cs, s: coordinate_median(us))
    if rule == "trimmed_mean":
        if sites is not None and sites <= 2 * trim:
            raise ValueError(f"trimmed mean with trim={trim} needs more than {2 * trim} sites, got {sites}")
        return HeldRule(rule, lambda us, cs, s: trimmed_mean(us, trim), min_updates=2 * trim + 1)
    if rule == "krum":
        if sites is not None:
            check_krum(sites, krum_f)
        return HeldRule(rule, lambda us, cs, s: krum(us, krum_f), min_updates=2 * krum_f + 3)
    if rule == "norm_clip":
        return HeldRule(rule, lambda us, cs, s: norm_clipped_mean(us, [c * s for c in cs]))
    if rule == "held_mean":  # the algorithm's weighted mean, holding the updates (to exclude alerted sites first)
        return HeldRule(rule, lambda us, cs, s: weighted_mean(us, [c * s for c in cs]))
    raise ValueError(f"rule must be 'mean' or one of {list(ROBUST_RULES)}, got {rule!r}")
