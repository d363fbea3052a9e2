"""What the server records about one round (:class:`~consortium.protocol.round_record.RoundSummary`,
made here from the round's results): who contributed, who was rejected and why, who
withheld its result and why, what was missing, mean training loss and pooled score.

``rejected`` holds every result that was not combined, with the server's reason; ``withheld``
those of them the site itself held back, with the reason the site gave in its result's refusal
header (its audit trail could not be written, its DP budget is spent, a check of the job's
configuration failed), as the site worded it.

The pooled score is that of the round's *received* global model on the union of the sites' test
splits: ``sum_k score_sum_k / sum_k n_k``, the per-example metric (accuracy, Dice) averaged over
every test example of every site -- each site shares only two numbers. Sites that did not report
a field (a privacy policy may drop reporting fields) are left out of the statistic that needs it
and listed under ``incomplete``; their updates are still combined.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from consortium.protocol.round_record import RoundSummary
from consortium.protocol.site_result import SiteResult


def summarise_round(round_number: int, results: Mapping[str, SiteResult], rejected: Mapping[str, str] | None = None,
                    finished_at: float | None = None, norms: Mapping[str, float] | None = None,
                    cosines: Mapping[str, float] | None = None, alerts: Mapping[str, str] | None = None) -> RoundSummary:
    """Sample-weighted mean training loss and pooled score over the sites that reported them."""
    if not results:
        raise ValueError(f"round {round_number}: no site results to summarise")
    with_loss = [r for r in results.values() if r.train_loss is not None]
    with_val = [r for r in results.values() if r.val_n is not None and r.val_score_sum is not None]
    n = sum(r.n_samples for r in with_loss)
    val_n = sum(r.val_n for r in with_val)
    metrics = {r.val_metric for r in results.values() if r.val_metric is not None}
    seconds = [r.train_seconds for r in results.values() if r.train_seconds is not None]
    return RoundSummary(
        round=round_number,
        sites=len(results),
        mean_train_loss=sum(r.train_loss * r.n_samples for r in with_loss) / n if n else math.nan,
        pooled_score=sum(r.val_score_sum for r in with_val) / val_n if val_n else math.nan,
        metric=metrics.pop() if len(metrics) == 1 else "score",
        contributors=sorted(results),
        rejected=dict(sorted((rejected or {}).items())),
        incomplete={s: list(r.missing) for s, r in sorted(results.items()) if r.missing},
        max_train_seconds=max(seconds, default=None),
        local_steps={s: r.local_steps for s, r in sorted(results.items()) if r.local_steps is not None},
        finished_at=finished_at,
        site_norms=dict(sorted((norms or {}).items())),
        site_cosines=dict(sorted((cosines or {}).items())),
        alerts=dict(sorted((alerts or {}).items())),
        epsilon={s: r.dp_epsilon for s, r in sorted(results.items()) if r.dp_epsilon is not None},
    )
