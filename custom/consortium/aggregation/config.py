"""The server aggregator's configuration: the JSON ``args`` of
:class:`~consortium.flare.aggregators.round.RoundAggregator`, one to one, checked and composed into a
:class:`~consortium.aggregation.round.RoundAggregation` (weighting, checks, combine rule, server
step). Pure: no FLARE import, so the job builders and recipes check an aggregator's arguments
where the job is written, not at the server."""

from __future__ import annotations

from dataclasses import dataclass

from consortium.aggregation.checks import DEFAULT_CHECKS, NormBound
from consortium.aggregation.fednova import TauEff
from consortium.aggregation.robust import make_robust_rule
from consortium.aggregation.round import DEFAULT_ALERT_Z, RoundAggregation
from consortium.aggregation.server_step import make_server_step
from consortium.aggregation.weighting import make_weighting


@dataclass(frozen=True)
class AggregatorConfig:
    """Args (the aggregator's JSON ``args``, one to one):
    algorithm: "fedavg" (weights n_k) or "fednova" (n_k / a_k, then tau_eff).
    tau_eff: FedNova's "normalisers" (sum p_k a_k, the paper) or "steps" (sum p_k tau_k).
    server_momentum: beta of heavy-ball momentum on the server (0: none).
    min_accepted: fewer accepted results than this fails the round instead of publishing a model
        built from too few sites (ScatterAndGather counts rejected results as responses).
    max_update_norm: reject an update whose L2 norm exceeds this (None: no bound).
    rule: "mean" (the algorithm's weighted mean, streamed) or a robust rule that holds the round's
        updates: "median", "trimmed_mean" (``trim`` per side), "krum" (``krum_f`` Byzantine sites;
        refused unless ``sites`` >= 2 krum_f + 3), "norm_clip" (clip to the round's median norm).
    sites: the consortium's size, to check a robust rule's conditions when the job is built.
    alert_threshold: robust z-score above which a site's update norm or direction is flagged in
        the round record (None: no per-site statistics).
    exclude_alerted: leave a flagged site out of that round (recorded as rejected, with the alert).
    """

    algorithm: str = "fedavg"
    tau_eff: str = TauEff.NORMALISERS.value
    server_momentum: float = 0.0
    min_accepted: int = 1
    max_update_norm: float | None = None
    rule: str = "mean"
    trim: int = 1
    krum_f: int = 1
    sites: int | None = None
    alert_threshold: float | None = DEFAULT_ALERT_Z
    exclude_alerted: bool = False

    def build(self) -> RoundAggregation:
        checks = DEFAULT_CHECKS + ((NormBound(self.max_update_norm),) if self.max_update_norm is not None else ())
        if self.algorithm == "fednova" and self.rule in ("median", "trimmed_mean", "krum"):
            raise ValueError(f"rule {self.rule!r} ignores FedNova's normalisers and tau_eff: use 'mean' or 'norm_clip' "
                             "with algorithm 'fednova'")
        if self.rule == "mean":  # streamed, unless alerted sites must be left out before combining
            rule = make_robust_rule("held_mean") if self.exclude_alerted else None
        else:
            rule = make_robust_rule(self.rule, self.trim, self.krum_f, self.sites)
        return RoundAggregation(make_weighting(self.algorithm, self.tau_eff), checks=checks, rule=rule,
                                step=make_server_step(self.server_momentum), min_accepted=self.min_accepted,
                                alert_threshold=self.alert_threshold, exclude_alerted=self.exclude_alerted)
