"""What of a site result's metadata may leave the site under a DP policy, per the contract's
release rules (:data:`consortium.protocol.site_result.FIELDS`): ``exact`` travels as computed, ``coarsen`` is
rounded, ``drop`` is removed, and any key the contract does not name is removed too (fail closed).

Coarsening is not a DP mechanism and is not accounted: it only bounds how finely a count or a sum
can be read. Counts are rounded to a multiple of ``count_step`` (never below ``count_step``, so
they stay valid positive weights); a metric sum is replaced by ``round(mean, decimals) · n'``
for the coarsened count ``n'``. What each remaining field reveals is listed in docs/security.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

from consortium.protocol.site_result import FIELDS, ReleaseRule

DEFAULT_COUNT_STEP = 10
DEFAULT_MEAN_DECIMALS = 2


def coarsen_count(n: int, step: int = DEFAULT_COUNT_STEP) -> int:
    """``n`` rounded to the nearest multiple of ``step``, at least ``step``."""
    if not (isinstance(step, int) and step >= 1):
        raise ValueError(f"count_step must be an integer >= 1, got {step!r}")
    return max(step, step * round(n / step))


def coarsen_sum(total: float, n: int, n_coarse: int, decimals: int = DEFAULT_MEAN_DECIMALS) -> float:
    """A per-example metric's sum as ``round(total / n, decimals) · n_coarse``."""
    return round(total / n, decimals) * n_coarse if n else 0.0


def released_meta(meta: Mapping, keep: Set[str] = frozenset(), count_step: int = DEFAULT_COUNT_STEP,
                  decimals: int = DEFAULT_MEAN_DECIMALS) -> dict:
    """The contract fields of ``meta`` as their release rule allows, plus the keys in ``keep``
    (e.g. FLARE's bookkeeping and the DP declaration); every other key is removed."""
    out = {k: meta[k] for k in keep if k in meta}
    for key, spec in FIELDS.items():
        if key not in meta or spec.release == ReleaseRule.DROP:
            continue
        out[key] = meta[key]
    for count_key, sum_key in (("n_samples", None), ("val_n", "val_score_sum")):
        if count_key not in out:
            continue
        n = int(out[count_key])
        out[count_key] = coarsen_count(n, count_step)
        if sum_key and sum_key in out:
            out[sum_key] = coarsen_sum(float(out[sum_key]), n, out[count_key], decimals)
    if "val_score_sum" in out and "val_n" not in out:  # a sum without its count cannot be coarsened
        del out["val_score_sum"]
    coarsened = {k for k, s in FIELDS.items() if s.release == ReleaseRule.COARSEN}
    if coarsened - {"n_samples", "val_n", "val_score_sum"}:
        raise ValueError(f"no coarsening rule for {sorted(coarsened - {'n_samples', 'val_n', 'val_score_sum'})}")
    return out
