"""A site's update-level DP policy: one typed record, validated once, that the site filter
(:class:`consortium.flare.filters.dp.GaussianUpdatePrivacy`) is built from.

σ is either given or calibrated so that ``planned_rounds`` releases (one per round, sampling rate
1: the site answers every round) spend at most ``target_epsilon`` at ``delta`` by Opacus'
``accountant``. Each job may spend at most ``job_epsilon_budget`` (default ``target_epsilon``), the
site at most ``site_epsilon_budget`` over every job; both are enforced by the ledger.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from consortium.privacy.accounting import check_accountant, check_delta, noise_multiplier_for
from consortium.privacy.gaussian import check_clip_norm, sensitivity
from consortium.privacy.release import DEFAULT_COUNT_STEP

DEFAULT_LEDGER = "privacy/ledger.json"  # relative to the site's workspace root, outside job run folders


def _positive(name: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


@dataclass(frozen=True)
class UpdatePrivacyPolicy:
    """Args:
    clip_norm: C, the L2 bound of a whole update (parameter units).
    site_epsilon_budget: ε the site may spend over every job (at ``delta``).
    noise_multiplier: σ; or null and ``target_epsilon`` with ``planned_rounds``.
    target_epsilon / planned_rounds: calibrate σ so that ``planned_rounds`` releases spend ``target_epsilon``.
    job_epsilon_budget: ε one job may spend (default ``target_epsilon``; null: only the site budget).
    delta: δ of every ε (default 1e-3).
    accountant: ``"rdp"`` or ``"prv"``.
    adjacency: ``"add_remove"`` (Δ = C) or ``"replace_one"`` (Δ = 2C), see :mod:`consortium.privacy.gaussian`.
    ledger_path: the site's ledger; relative paths are under the site's workspace root.
    count_step: counts in the metadata are rounded to multiples of this.
    noise_seed: seed of the noise generator, for tests only; null: fresh OS entropy.
    """

    clip_norm: float
    site_epsilon_budget: float
    noise_multiplier: float | None = None
    target_epsilon: float | None = None
    planned_rounds: int | None = None
    job_epsilon_budget: float | None = None
    delta: float = 1e-3
    accountant: str = "rdp"
    adjacency: str = "add_remove"
    ledger_path: str = DEFAULT_LEDGER
    count_step: int = DEFAULT_COUNT_STEP
    noise_seed: int | None = None

    def __post_init__(self) -> None:
        check_clip_norm(self.clip_norm)
        sensitivity(self.clip_norm, self.adjacency)  # validates adjacency
        _positive("site_epsilon_budget", self.site_epsilon_budget)
        _positive("noise_multiplier", self.noise_multiplier, allow_none=True)
        _positive("target_epsilon", self.target_epsilon, allow_none=True)
        _positive("job_epsilon_budget", self.job_epsilon_budget, allow_none=True)
        if (self.noise_multiplier is None) == (self.target_epsilon is None):
            raise ValueError("give exactly one of noise_multiplier and target_epsilon, got "
                             f"noise_multiplier={self.noise_multiplier!r}, target_epsilon={self.target_epsilon!r}")
        if self.target_epsilon is not None and not (isinstance(self.planned_rounds, int) and self.planned_rounds >= 1):
            raise ValueError(f"target_epsilon needs planned_rounds >= 1, got planned_rounds={self.planned_rounds!r}")
        check_delta(self.delta)
        check_accountant(self.accountant)
        if not isinstance(self.ledger_path, str) or not self.ledger_path:
            raise ValueError(f"ledger_path must be a path, got {self.ledger_path!r}")
        if not (isinstance(self.count_step, int) and self.count_step >= 1):
            raise ValueError(f"count_step must be an integer >= 1, got {self.count_step!r}")
        if self.target_epsilon is not None and self.target_epsilon > self.site_epsilon_budget:
            raise ValueError(f"target_epsilon = {self.target_epsilon!r} exceeds site_epsilon_budget = "
                             f"{self.site_epsilon_budget!r}: no job could finish")
        sigma = self.noise_multiplier
        if sigma is None:
            sigma = noise_multiplier_for(self.target_epsilon, self.delta, 1.0, self.planned_rounds, self.accountant)
        object.__setattr__(self, "_sigma", float(sigma))

    @property
    def sigma(self) -> float:
        """σ in effect (given or calibrated); noise std is ``σ · Δ``."""
        return self._sigma

    @property
    def job_budget(self) -> float | None:
        return self.job_epsilon_budget if self.job_epsilon_budget is not None else self.target_epsilon
