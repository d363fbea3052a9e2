"""One round of aggregation, composed: per-site checks -> site weight -> combine rule -> server step.

    round = RoundAggregation(FedNovaWeighting(), checks=DEFAULT_CHECKS + (NormBound(10.0),),
                             step=ServerMomentum(0.9), min_accepted=3)
    round.start(round_number, global_weights)
    for site, update, result in arriving_results:
        reason = round.offer(site, update, result)     # None: accepted (and already added)
    update, record = round.close()                     # publish w_global + update; log the record

Contract: ``offer`` takes the update ``u_k = w_k - w_global`` and the site's
:class:`~consortium.protocol.SiteResult`; a result fails closed (rejected with a reason, never
combined with a guessed weight) when a check fails, the weighting lacks what it needs, the site
already contributed this round, or it scores another metric than the sites before it. With a
streaming combine rule the update is added at once and not kept.
"""

from __future__ import annotations

from collections.abc import Sequence

from consortium.aggregation.checks import DEFAULT_CHECKS, Reference, Update, UpdateCheck, run_checks
from consortium.aggregation.combine import WeightedSum
from consortium.aggregation.round_summary import RoundSummary, summarise_round
from consortium.aggregation.server_step import PlainStep, ServerStep
from consortium.aggregation.weighting import Weighting
from consortium.protocol import SiteResult


class RoundAggregation:
    def __init__(self, weighting: Weighting, checks: Sequence[UpdateCheck] = DEFAULT_CHECKS,
                 rule: WeightedSum | None = None, step: ServerStep | None = None, min_accepted: int = 1) -> None:
        if not isinstance(min_accepted, int) or isinstance(min_accepted, bool) or min_accepted < 1:
            raise ValueError(f"min_accepted must be an integer >= 1, got {min_accepted!r}")
        self.weighting = weighting
        self.checks = tuple(checks)
        self.rule = rule if rule is not None else WeightedSum()
        self.step = step if step is not None else PlainStep()
        self.min_accepted = min_accepted
        self.start(0, None)

    def start(self, round_number: int, reference: Reference) -> None:
        """Begin a round against the global model ``reference`` (tensor name -> array, or None)."""
        self.round_number = int(round_number)
        self.reference = reference
        self.accepted: dict[str, SiteResult] = {}
        self.rejected: dict[str, str] = {}
        self.rule.reset()

    def reject(self, site: str, reason: str) -> str:
        """Record a rejection (also one decided before the result could be read)."""
        self.rejected.setdefault(site, reason)
        return reason

    def offer(self, site: str, update: Update, result: SiteResult) -> str | None:
        """Check and add one site's result; the reason when it is rejected, else None."""
        if site in self.accepted:
            return f"second result from {site} in round {self.round_number}; discarded"  # keep the first's record
        try:
            run_checks(site, update, self.reference, self.checks)
            self.weighting.check(result)
            metrics = {r.val_metric for r in self.accepted.values() if r.val_metric is not None}
            if result.val_metric is not None and metrics and metrics != {result.val_metric}:
                raise ValueError(f"reports {result.val_metric!r}, other sites {sorted(metrics)}")
            coefficient = self.weighting.coefficient(result)
        except ValueError as e:
            reason = str(e)
            return self.reject(site, reason if site in reason else f"result from {site}: {reason}")
        self.rule.add(update, coefficient)
        self.accepted[site] = result
        return None

    def close(self, finished_at: float | None = None) -> tuple[Update, RoundSummary]:
        """The update to publish and the round's record; RuntimeError when fewer than
        ``min_accepted`` sites were accepted (nothing is published)."""
        try:
            if len(self.accepted) < self.min_accepted:
                why = "; ".join(f"{s}: {r}" for s, r in sorted(self.rejected.items())) or "no rejections"
                raise RuntimeError(f"round {self.round_number}: accepted results from {sorted(self.accepted)}, need "
                                   f"min_accepted={self.min_accepted} ({why})")
            results = [self.accepted[s] for s in sorted(self.accepted)]
            combined = self.rule.result(self.weighting.scale(results))
            record = summarise_round(self.round_number, self.accepted, self.rejected, finished_at)
            return self.step.apply(combined), record
        finally:
            self.start(self.round_number, self.reference)
