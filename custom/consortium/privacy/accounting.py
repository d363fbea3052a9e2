"""(ε, δ) accounting with Opacus' accountants, never hand-written formulas.

A release is a run of ``steps`` applications of the (subsampled) Gaussian mechanism with noise
multiplier ``σ`` (noise standard deviation ``σ·Δ`` for L2 sensitivity ``Δ``) and sampling rate
``q``: Opacus' history entry ``(σ, q, steps)``. Every entry composes with every other one, within
a job and across jobs, so a site's total ε is the accountant's ε over all of its entries.

Accountants (both assume add/remove-one adjacency, sensitivity = the clip norm):

* ``"rdp"``: Rényi DP of the sampled Gaussian mechanism (Mironov 2017; Mironov, Talwar, Zhang
  2019), converted to (ε, δ) with Balle et al. 2020. An upper bound on ε.
* ``"prv"``: privacy random variables (Gopi, Lee, Wutschitz 2021): numerically tight, ε within
  ``eps_error`` of the true value.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

ACCOUNTANTS = ("rdp", "prv")


@dataclass(frozen=True)
class GaussianSteps:
    """``steps`` applications of the Gaussian mechanism, noise multiplier ``σ``, sampling rate ``q``."""

    noise_multiplier: float
    sample_rate: float
    steps: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.noise_multiplier) and self.noise_multiplier > 0):
            raise ValueError(f"noise_multiplier must be a positive number, got {self.noise_multiplier!r}")
        if not 0 < self.sample_rate <= 1:
            raise ValueError(f"sample_rate must be in (0, 1], got {self.sample_rate!r}")
        if not (isinstance(self.steps, int) and self.steps >= 1):
            raise ValueError(f"steps must be an integer >= 1, got {self.steps!r}")

    def entry(self) -> tuple[float, float, int]:
        """Opacus' history entry ``(σ, q, steps)``."""
        return (float(self.noise_multiplier), float(self.sample_rate), int(self.steps))


def check_accountant(accountant: str) -> str:
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"accountant must be one of {ACCOUNTANTS}, got {accountant!r}")
    return accountant


def check_delta(delta: float) -> float:
    if not (isinstance(delta, int | float) and 0 < delta < 1):
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")
    return float(delta)


def epsilon_spent(releases: Iterable[GaussianSteps], delta: float, accountant: str = "rdp") -> float:
    """ε of the composition of ``releases`` at ``delta`` by Opacus' ``accountant``; 0 for none."""
    from opacus.accountants import PRVAccountant, RDPAccountant

    history = [r.entry() for r in releases]
    check_delta(delta)
    if not history:
        return 0.0
    acc = {"rdp": RDPAccountant, "prv": PRVAccountant}[check_accountant(accountant)]()
    acc.history = history
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # PRV at q = 1 takes log(0) in a masked branch
        return float(acc.get_epsilon(delta=delta))


def noise_multiplier_for(target_epsilon: float, delta: float, sample_rate: float, steps: int,
                         accountant: str = "rdp") -> float:
    """The smallest σ (to Opacus' tolerance, 0.01 in ε) whose ``steps`` releases at rate
    ``sample_rate`` spend at most ``target_epsilon`` at ``delta``:
    ``opacus.accountants.utils.get_noise_multiplier``. Memoised: an executor asks every round
    with the same arguments, and the search takes seconds."""
    return _noise_multiplier_for(target_epsilon, delta, sample_rate, steps, accountant)


@functools.lru_cache(maxsize=256)
def _noise_multiplier_for(target_epsilon, delta, sample_rate, steps, accountant) -> float:
    from opacus.accountants.utils import get_noise_multiplier

    if not (isinstance(target_epsilon, int | float) and math.isfinite(target_epsilon) and target_epsilon > 0):
        raise ValueError(f"target_epsilon must be a positive finite number, got {target_epsilon!r}")
    GaussianSteps(1.0, sample_rate, steps)  # validates sample_rate and steps
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(get_noise_multiplier(target_epsilon=target_epsilon, target_delta=check_delta(delta),
                                          sample_rate=sample_rate, steps=steps,
                                          accountant=check_accountant(accountant)))
