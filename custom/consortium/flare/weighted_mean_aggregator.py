"""FedAvg for ScatterAndGather: a thin adapter over
:func:`consortium.aggregation.weighted_mean.weighted_mean`, weights ``p_k = n_k / sum n``."""

from __future__ import annotations

from consortium.aggregation.round_summary import SiteRoundReport
from consortium.aggregation.weighted_mean import sample_weights, weighted_mean
from consortium.flare.checked_aggregator import CheckedAggregator


class WeightedMeanAggregator(CheckedAggregator):
    def combine(self, updates: list[dict], reports: list[SiteRoundReport], metas: list[dict]) -> dict:
        return weighted_mean(updates, sample_weights([r.n_samples for r in reports]))
