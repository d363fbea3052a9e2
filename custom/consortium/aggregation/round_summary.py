"""What the server records about one round: who contributed, who was rejected and why, who
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
from dataclasses import asdict, dataclass, field, replace

from consortium.protocol.site_result import SiteResult


@dataclass(frozen=True)
class RoundSummary:
    round: int
    sites: int
    mean_train_loss: float
    pooled_score: float
    metric: str = "accuracy"
    contributors: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # site -> reason
    incomplete: dict[str, list[str]] = field(default_factory=dict)  # site -> reporting fields it lacked
    max_train_seconds: float | None = None  # the slowest site's local training time
    local_steps: dict[str, int] = field(default_factory=dict)
    finished_at: float | None = None  # wall-clock time the round's update was made
    site_norms: dict[str, float] = field(default_factory=dict)  # L2 norm of each accepted update
    site_cosines: dict[str, float] = field(default_factory=dict)  # cosine to the previous global update
    alerts: dict[str, str] = field(default_factory=dict)  # site -> why its update is an outlier
    epsilon: dict[str, float] = field(default_factory=dict)  # site -> its privacy loss for this job so far (DP)
    withheld: dict[str, str] = field(default_factory=dict)  # site -> the reason it gave for sending no update

    def to_dict(self) -> dict:
        return asdict(self)

    def with_withheld(self, withheld: Mapping[str, str]) -> RoundSummary:
        """This record with ``withheld`` (site -> the reason the site gave) added."""
        return replace(self, withheld=dict(sorted({**self.withheld, **withheld}.items()))) if withheld else self

    def line(self, total_sites: int | None = None) -> str:
        of = f"/{total_sites}" if total_sites else ""
        text = (f"round {self.round:3d}  sites {self.sites}{of}  mean loss {self.mean_train_loss:.4f}  "
                f"pooled {self.metric} {self.pooled_score:.3f}")
        rejected = {s: r for s, r in self.rejected.items() if s not in self.withheld}
        if rejected:
            text += "  rejected: " + "; ".join(f"{s} ({r})" for s, r in sorted(rejected.items()))
        if self.withheld:  # the site's own words (its reason is also in ``rejected``)
            text += "  withheld: " + "; ".join(f"{s} ({r})" for s, r in sorted(self.withheld.items()))
        if self.incomplete:
            text += "  incomplete: " + ", ".join(sorted(self.incomplete))
        if self.alerts:
            text += "  ALERT: " + "; ".join(f"{s}: {r}" for s, r in sorted(self.alerts.items()))
        return text


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
