"""Per-site anomaly statistics of a round and the alerts they raise.

For each accepted site: the L2 norm of its update and the cosine between its update and the
previous round's global update (a sign-flipped or off-course update points away from where the
consortium went). Across the round's sites, a robust z-score (Iglewicz & Hoaglin 1993):
``z = (x - median) / (1.4826 MAD)``, on log-norms and on cosines. A site alerts when its log-norm z
exceeds the threshold and its norm is at least 5x the round's median (a site that does more local
work is not an outlier, one that sends 50x is), or its cosine z falls below minus the threshold and
the cosine is below -0.5 (it points away). Metadata only: norms and cosines, never values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from consortium.aggregation.checks import dot64, update_norm

MAD_TO_SD = 1.4826


def robust_z(values: Mapping[str, float]) -> dict[str, float]:
    """Robust z-scores; all 0 when the spread is 0 or there are fewer than 3 values."""
    if len(values) < 3:
        return dict.fromkeys(values, 0.0)
    x = np.array(list(values.values()), dtype=np.float64)
    med = float(np.median(x))
    scale = MAD_TO_SD * float(np.median(np.abs(x - med)))
    if scale == 0.0:
        scale = 1.2533 * float(np.mean(np.abs(x - med)))  # mean absolute deviation, for ties at the median
    if scale == 0.0:
        return dict.fromkeys(values, 0.0)
    return {k: (v - med) / scale for k, v in values.items()}


def cosine(update: Mapping[str, np.ndarray], direction: Mapping[str, np.ndarray] | None,
           norms: tuple[float, float] | None = None) -> float | None:
    """The cosine between ``update`` and ``direction`` (all tensors as one vector; None without a
    direction of the same tensors, or when a norm is 0). ``norms``: (‖update‖, ‖direction‖) when
    the caller has them already."""
    if direction is None or set(direction) != set(update):
        return None
    dot = sum(dot64(update[k], direction[k]) for k in update)
    u, d = norms if norms is not None else (update_norm(update), update_norm(direction))
    denom = u * d
    return dot / denom if denom > 0 else None


def alerts(norms: Mapping[str, float], cosines: Mapping[str, float], threshold: float, min_norm_ratio: float = 5.0,
           max_cosine: float = -0.5) -> dict[str, str]:
    """``{site: reason}`` for the sites whose norm or direction is an outlier in this round.

    With a handful of sites the MAD can be tiny (three sites with nearly equal norms make a fourth
    at twice their norm a z of 20), so an outlier must also be far in absolute terms: a norm at
    least ``min_norm_ratio`` times the round's median, a cosine below ``max_cosine``.
    """
    out = {}
    positive = {s: n for s, n in norms.items() if n > 0}
    z_norm = robust_z({s: math.log10(n) for s, n in positive.items()})
    median_norm = float(np.median(list(positive.values()))) if positive else 0.0
    z_cos = robust_z(cosines)
    for site in sorted(set(norms) | set(cosines)):
        reasons = []
        if z_norm.get(site, 0.0) > threshold and norms[site] >= min_norm_ratio * median_norm:
            reasons.append(f"update norm {norms[site]:.3g}, {norms[site] / median_norm:.0f}x the round's median "
                           f"(robust z {z_norm[site]:.1f} on log-norms)")
        if z_cos.get(site, 0.0) < -threshold and cosines[site] < max_cosine:
            reasons.append(f"cosine to the last global update {cosines[site]:.2f} (robust z {z_cos[site]:.1f})")
        if reasons:
            out[site] = "; ".join(reasons)
    return out
