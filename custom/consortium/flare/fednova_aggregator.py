"""FedNova for ScatterAndGather: a thin adapter over
:func:`consortium.aggregation.fednova.fednova_update`.

Each result must carry ``local_steps`` (tau_k) and ``fednova_a`` (a_k) besides the common
metadata; one without them is rejected, not averaged as if it were FedAvg.
"""

from __future__ import annotations

from consortium.aggregation.fednova import TauEff, fednova_update
from consortium.aggregation.fednova import server_momentum as server_momentum_update
from consortium.aggregation.round_summary import SiteRoundReport
from consortium.flare.checked_aggregator import CheckedAggregator, meta_number
from consortium.protocol import ResultMeta


class FedNovaAggregator(CheckedAggregator):
    def __init__(self, tau_eff: str = TauEff.NORMALISERS.value, min_accepted: int = 1, server_momentum: float = 0.0) -> None:
        """Args:
        tau_eff: "normalisers" (tau_eff = sum p_k a_k, the paper) or "steps" (sum p_k tau_k).
        min_accepted: see :class:`~consortium.flare.checked_aggregator.CheckedAggregator`.
        server_momentum: beta of heavy-ball momentum on the server (0: none).
        """
        super().__init__(min_accepted)
        server_momentum_update(None, {}, server_momentum)  # validate beta up front
        self.beta = server_momentum
        self.velocity: dict | None = None
        try:
            self.tau_eff = TauEff(tau_eff)
        except ValueError:
            raise ValueError(f"tau_eff must be one of {[t.value for t in TauEff]}, got {tau_eff!r}") from None

    def check_meta(self, site: str, meta: dict) -> None:
        if meta_number(site, meta, ResultMeta.LOCAL_STEPS, int) < 1:
            raise ValueError(f"result from {site}: local_steps = {meta[ResultMeta.LOCAL_STEPS.value]!r} must be >= 1")
        if meta_number(site, meta, ResultMeta.NORMALISER) <= 0:
            raise ValueError(f"result from {site}: fednova_a = {meta[ResultMeta.NORMALISER.value]!r} must be positive")

    def combine(self, updates: list[dict], reports: list[SiteRoundReport], metas: list[dict]) -> dict:
        update = fednova_update(
            updates,
            [r.n_samples for r in reports],
            [float(m[ResultMeta.NORMALISER.value]) for m in metas],
            [int(m[ResultMeta.LOCAL_STEPS.value]) for m in metas],
            self.tau_eff,
        )
        self.velocity = server_momentum_update(self.velocity, update, self.beta)
        return self.velocity
