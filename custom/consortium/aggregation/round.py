"""One round of aggregation, composed: per-site checks -> site weight -> combine rule (streaming
weighted sum, or a robust rule holding the round's updates) -> server
step, with per-site norm/direction statistics and alerts in the round record.

    round = RoundAggregation(FedNovaWeighting(), checks=DEFAULT_CHECKS + (NormBound(10.0),),
                             step=ServerMomentum(0.9), min_accepted=3)
    round.start(round_number, global_weights)
    for site, update, result in arriving_results:
        reason = round.offer(site, update, result)     # None: accepted (and already added)
    update, record = round.close()                     # publish w_global + update; log the record

Contract: ``offer`` takes the update ``u_k = w_k - w_global`` and the site's
:class:`~consortium.protocol.site_result.SiteResult`; a result fails closed (rejected with a reason, never
combined with a guessed weight) when a check fails, the weighting lacks what it needs, the site
already contributed this round, or it scores another metric than the sites before it. With a
streaming combine rule the update is added at once and not kept.
"""

from __future__ import annotations

from collections.abc import Sequence

from consortium.aggregation.alerts import alerts, cosine
from consortium.aggregation.checks import DEFAULT_CHECKS, Reference, Update, UpdateCheck, run_checks, update_norm
from consortium.aggregation.combine import WeightedSum
from consortium.aggregation.robust import HeldRule
from consortium.aggregation.round_summary import summarise_round
from consortium.aggregation.server_step import PlainStep, ServerStep
from consortium.aggregation.weighting import Weighting
from consortium.protocol.round_record import RoundSummary
from consortium.protocol.site_result import SiteResult

DEFAULT_ALERT_Z = 3.5  # Iglewicz & Hoaglin's cut-off for the modified z-score


class RoundAggregation:
    def __init__(self, weighting: Weighting, checks: Sequence[UpdateCheck] = DEFAULT_CHECKS,
                 rule: WeightedSum | HeldRule | None = None, step: ServerStep | None = None, min_accepted: int = 1,
                 alert_threshold: float | None = DEFAULT_ALERT_Z, exclude_alerted: bool = False) -> None:
        """``alert_threshold``: robust z above which a site's update norm or direction raises an
        alert in the round record (:mod:`consortium.aggregation.alerts`); None for no statistics
        (an encrypted round, whose values the server cannot see). ``exclude_alerted``: leave an
        alerted site out of the round (it is then listed as rejected); needs a rule that holds the
        round's updates."""
        if exclude_alerted and (alert_threshold is None or not getattr(rule, "needs_all_updates", False)):
            raise ValueError("exclude_alerted needs alerts (alert_threshold) and a rule that holds the round's updates "
                             "(a robust rule, or 'held_mean')")
        self.exclude_alerted = exclude_alerted
        if not isinstance(min_accepted, int) or isinstance(min_accepted, bool) or min_accepted < 1:
            raise ValueError(f"min_accepted must be an integer >= 1, got {min_accepted!r}")
        if alert_threshold is not None and not (isinstance(alert_threshold, int | float) and alert_threshold > 0):
            raise ValueError(f"alert_threshold must be a positive number or None, got {alert_threshold!r}")
        self.weighting = weighting
        self.checks = tuple(checks)
        self.rule = rule if rule is not None else WeightedSum()
        self.step = step if step is not None else PlainStep()
        self.min_accepted = min_accepted
        self.alert_threshold = alert_threshold
        self.previous: Update | None = None  # the last round's combined update, for the direction statistic
        self.last_accepted: list[SiteResult] = []
        self.start(0, None)

    def start(self, round_number: int, reference: Reference) -> None:
        """Begin a round against the global model ``reference`` (tensor name -> array, or None)."""
        self.round_number = int(round_number)
        self.reference = reference
        self.accepted: dict[str, SiteResult] = {}
        self.rejected: dict[str, str] = {}
        self.norms: dict[str, float] = {}
        self.cosines: dict[str, float] = {}
        self._previous_norm: float | None = None  # the norm of ``previous``, computed at its first use in the round
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
            self.rule.add(update, coefficient)
        except ValueError as e:
            reason = str(e)
            return self.reject(site, reason if site in reason else f"result from {site}: {reason}")
        self.accepted[site] = result
        if self.alert_threshold is not None:
            self.norms[site] = update_norm(update)
            if self.previous is not None and self._previous_norm is None:
                self._previous_norm = update_norm(self.previous)  # once per round, not once per site
            c = cosine(update, self.previous, (self.norms[site], self._previous_norm) if self.previous is not None else None)
            if c is not None:
                self.cosines[site] = c
        return None

    def close(self, finished_at: float | None = None) -> tuple[Update, RoundSummary]:
        """The update to publish and the round's record; RuntimeError when fewer than
        ``min_accepted`` sites were accepted (nothing is published)."""
        try:
            if len(self.accepted) < self.min_accepted:
                why = "; ".join(f"{s}: {r}" for s, r in sorted(self.rejected.items())) or "no rejections"
                raise RuntimeError(f"round {self.round_number}: accepted results from {sorted(self.accepted)}, need "
                                   f"min_accepted={self.min_accepted} ({why})")
            flagged = alerts(self.norms, self.cosines, self.alert_threshold) if self.alert_threshold is not None else {}
            if self.exclude_alerted and len(self.accepted) - len(flagged) >= self.min_accepted:
                for i, site in reversed(list(enumerate(self.accepted))):  # rule.add order = acceptance order
                    if site in flagged:
                        self.rule.drop(i)
                        del self.accepted[site]
                        self.rejected[site] = f"excluded this round by its alert: {flagged[site]}"
            results = [self.accepted[s] for s in sorted(self.accepted)]
            self.last_accepted = results  # what the round was combined from (the HE canary is computed from it)
            combined = self.rule.result(self.weighting.scale(results))
            record = summarise_round(self.round_number, self.accepted, self.rejected, finished_at,
                                     norms=self.norms, cosines=self.cosines, alerts=flagged)
            if self.alert_threshold is not None:
                self.previous = combined
            return self.step.apply(combined), record
        finally:
            self.start(self.round_number, self.reference)
