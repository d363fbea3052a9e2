"""How much each site's update counts: the algorithm's part of a round.

The global update is ``scale * sum_k c_k u_k``: each site's coefficient ``c_k`` is known as soon as
its result arrives, so the sum can be accumulated one result at a time (and, under encryption, the
sites can pre-multiply ``c_k`` themselves); ``scale`` needs every accepted site's numbers and is
applied once at the end.

* FedAvg (McMahan et al. 2017): ``c_k = n_k``, ``scale = 1 / sum n``, i.e. ``sum_k p_k u_k``.
* FedNova (Wang et al. 2020): ``c_k = n_k / a_k``, ``scale = (sum_k n_k a_k) / (sum n)^2``, i.e.
  ``tau_eff * sum_k p_k u_k / a_k`` with ``tau_eff = sum_k p_k a_k`` (or ``sum_k n_k tau_k`` in
  place of ``sum_k n_k a_k`` for ``TauEff.STEPS``). Equals :func:`consortium.aggregation.fednova.fednova_update`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from consortium.aggregation.fednova import TauEff
from consortium.protocol.site_result import SiteResult


class Weighting(Protocol):
    name: str

    def check(self, result: SiteResult) -> None:
        """ValueError when ``result`` lacks what this weighting needs."""

    def coefficient(self, result: SiteResult) -> float:
        """``c_k``, the site's multiplier in the running sum."""

    def scale(self, results: Sequence[SiteResult]) -> float:
        """The factor applied once to the finished sum."""


class FedAvgWeighting:
    name = "fedavg"

    def check(self, result: SiteResult) -> None:
        """n_samples is checked positive by :class:`SiteResult` itself."""

    def coefficient(self, result: SiteResult) -> float:
        return float(result.n_samples)

    def scale(self, results: Sequence[SiteResult]) -> float:
        return 1.0 / sum(r.n_samples for r in results)


class FedNovaWeighting:
    name = "fednova"

    def __init__(self, tau_eff: str = TauEff.NORMALISERS.value) -> None:
        try:
            self.tau_eff = TauEff(tau_eff)
        except ValueError:
            raise ValueError(f"tau_eff must be one of {[t.value for t in TauEff]}, got {tau_eff!r}") from None

    def check(self, result: SiteResult) -> None:
        if result.local_steps is None or result.local_steps < 1:
            raise ValueError(f"FedNova needs local_steps >= 1, got {result.local_steps!r}")
        if result.fednova_a is None or result.fednova_a <= 0:
            raise ValueError(f"FedNova needs a positive normaliser fednova_a, got {result.fednova_a!r}")

    def coefficient(self, result: SiteResult) -> float:
        return result.n_samples / result.fednova_a

    def scale(self, results: Sequence[SiteResult]) -> float:
        n = sum(r.n_samples for r in results)
        work = (r.fednova_a if self.tau_eff == TauEff.NORMALISERS else r.local_steps for r in results)
        return sum(r.n_samples * w for r, w in zip(results, work, strict=True)) / (n * n)


def make_weighting(algorithm: str, tau_eff: str = TauEff.NORMALISERS.value) -> Weighting:
    if algorithm == FedAvgWeighting.name:
        return FedAvgWeighting()
    if algorithm == FedNovaWeighting.name:
        return FedNovaWeighting(tau_eff)
    raise ValueError(f"algorithm must be 'fedavg' or 'fednova', got {algorithm!r}")


class PreWeighted:
    """A weighting whose coefficients the sites applied before encrypting: the server adds with
    coefficient 1, keeps the scale, and knows ``sum_k c_k`` (the canary the sites check)."""

    def __init__(self, inner: Weighting) -> None:
        self.inner = inner
        self.name = f"{inner.name} (pre-weighted at the sites)"

    def check(self, result: SiteResult) -> None:
        self.inner.check(result)

    def coefficient(self, result: SiteResult) -> float:
        return 1.0

    def scale(self, results: Sequence[SiteResult]) -> float:
        return self.inner.scale(results)

    def canary(self, results: Sequence[SiteResult]) -> float:
        return float(sum(self.inner.coefficient(r) for r in results))
