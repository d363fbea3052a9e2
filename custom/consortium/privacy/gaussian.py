"""The Gaussian mechanism on a whole model update (update-level, or "site-level", DP).

``release(u) = clip_C(u) + N(0, (σ·Δ)² I)``, ``clip_C(u) = u · min(1, C / ||u||₂)`` where ``||u||₂``
is the L2 norm over *all* arrays of the update together (flat clipping; McMahan et al. 2018,
"Learning Differentially Private Recurrent Language Models"; Dwork & Roth 2014, Thm A.1).

Adjacency, and so the sensitivity ``Δ``:

* ``"add_remove"`` (default, what Opacus' accountants assume): the neighbouring input is the
  site's update present or absent (replaced by zero). ``Δ = C``, noise std ``σ·C``.
* ``"replace_one"``: the neighbouring input is any other update of norm ≤ C, e.g. the site's data
  with one patient changed. ``Δ = 2C``, noise std ``2σ·C``, so that the same accountant ε holds.

Units: ``C`` in the update's own units (parameter space); ``σ`` is dimensionless.
The contract with the server: it receives a noised update whose norm is *not* bounded by C
(the noise adds about ``σ·Δ·√d`` for ``d`` parameters) and must not re-scale it by the site's
norm; FedAvg weights and everything else are unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from consortium.aggregation.checks import update_norm as global_norm  # ||u||_2 over every array, float64

ADJACENCIES = {"add_remove": 1.0, "replace_one": 2.0}


def sensitivity(clip_norm: float, adjacency: str = "add_remove") -> float:
    """L2 sensitivity ``Δ`` of a clipped update under ``adjacency`` (C or 2C)."""
    if adjacency not in ADJACENCIES:
        raise ValueError(f"adjacency must be one of {sorted(ADJACENCIES)}, got {adjacency!r}")
    check_clip_norm(clip_norm)
    return ADJACENCIES[adjacency] * float(clip_norm)


def check_clip_norm(clip_norm: float) -> float:
    if not (isinstance(clip_norm, int | float) and math.isfinite(clip_norm) and clip_norm > 0):
        raise ValueError(f"clip_norm must be a positive finite number, got {clip_norm!r}")
    return float(clip_norm)


def clip_update(update: Mapping[str, np.ndarray], clip_norm: float) -> tuple[dict[str, np.ndarray], float]:
    """``(clip_C(u), ||u||₂)``: scaled by ``min(1, C/||u||₂)``, dtype kept. ValueError for a
    non-finite or non-float update (it cannot be clipped meaningfully)."""
    check_clip_norm(clip_norm)
    for k, v in update.items():
        a = np.asarray(v)
        if not np.issubdtype(a.dtype, np.floating):
            raise ValueError(f"update[{k!r}] has dtype {a.dtype}; only floating-point updates can be privatised")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"update[{k!r}] has non-finite values")
    norm = global_norm(update)
    scale = min(1.0, clip_norm / norm) if norm > 0 else 1.0
    # computed in float64; the 1e-6 margin keeps the float32 result's norm <= C after rounding
    scale *= 1.0 - 1e-6 if scale < 1.0 else 1.0
    return {k: (np.asarray(v, dtype=np.float64) * scale).astype(np.asarray(v).dtype) for k, v in update.items()}, norm


def gaussian_update(update: Mapping[str, np.ndarray], clip_norm: float, noise_multiplier: float,
                    rng: np.random.Generator, adjacency: str = "add_remove") -> dict[str, np.ndarray]:
    """``clip_C(u) + N(0, (σ·Δ)²)`` elementwise, with noise drawn from ``rng`` (a seeded
    ``numpy.random.Generator`` for tests; ``np.random.default_rng()`` from OS entropy in use)."""
    if not (isinstance(noise_multiplier, int | float) and math.isfinite(noise_multiplier) and noise_multiplier > 0):
        raise ValueError(f"noise_multiplier must be a positive finite number, got {noise_multiplier!r}")
    std = noise_multiplier * sensitivity(clip_norm, adjacency)
    clipped, _ = clip_update(update, clip_norm)
    return {k: (v.astype(np.float64) + rng.normal(0.0, std, size=v.shape)).astype(v.dtype) for k, v in clipped.items()}
