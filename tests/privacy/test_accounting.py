"""ε and σ from Opacus' accountants, checked against Opacus driven step by step and against the
exact privacy curve of the composed Gaussian mechanism at sampling rate 1."""

from __future__ import annotations

import math

import pytest
from opacus.accountants import PRVAccountant, RDPAccountant
from scipy.optimize import brentq
from scipy.stats import norm

from consortium.privacy.accounting import GaussianSteps, epsilon_spent, noise_multiplier_for


def exact_gaussian_epsilon(sigma: float, steps: int, delta: float) -> float:
    """T-fold Gaussian mechanism (Δ = 1, std σ) is μ-GDP with μ = √T / σ (Dong, Roth, Su 2019);
    its exact δ(ε) = Φ(-ε/μ + μ/2) - e^ε Φ(-ε/μ - μ/2) (Balle & Wang 2018), solved for ε."""
    mu = math.sqrt(steps) / sigma

    def gap(eps):
        return norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * norm.cdf(-eps / mu - mu / 2) - delta

    return brentq(gap, 0.0, 100.0)


@pytest.mark.parametrize("accountant_cls,name", [(RDPAccountant, "rdp"), (PRVAccountant, "prv")])
def test_epsilon_agrees_with_opacus_accountant_stepped_as_in_training(accountant_cls, name):
    acc = accountant_cls()
    for _ in range(120):
        acc.step(noise_multiplier=1.1, sample_rate=0.05)

    ours = epsilon_spent([GaussianSteps(1.1, 0.05, 120)], delta=1e-5, accountant=name)

    assert ours == pytest.approx(acc.get_epsilon(delta=1e-5), rel=1e-3)


@pytest.mark.parametrize("sigma,steps", [(2.0, 10), (5.0, 30), (1.0, 1)])
def test_prv_matches_the_exact_gaussian_curve_and_rdp_bounds_it(sigma, steps):
    exact = exact_gaussian_epsilon(sigma, steps, 1e-3)

    prv = epsilon_spent([GaussianSteps(sigma, 1.0, steps)], 1e-3, "prv")
    rdp = epsilon_spent([GaussianSteps(sigma, 1.0, steps)], 1e-3, "rdp")

    assert prv == pytest.approx(exact, abs=0.02)
    assert rdp >= exact - 1e-9


def test_releases_compose_as_one_history():
    a, b = GaussianSteps(3.0, 1.0, 4), GaussianSteps(3.0, 1.0, 6)

    assert epsilon_spent([a, b], 1e-3) == pytest.approx(epsilon_spent([GaussianSteps(3.0, 1.0, 10)], 1e-3))
    assert epsilon_spent([a, b], 1e-3) > epsilon_spent([a], 1e-3)
    assert epsilon_spent([], 1e-3) == 0.0


@pytest.mark.parametrize("name", ["rdp", "prv"])
def test_calibrated_sigma_meets_the_target_and_is_nearly_the_smallest(name):
    sigma = noise_multiplier_for(1.0, 1e-3, sample_rate=1.0, steps=30, accountant=name)

    assert epsilon_spent([GaussianSteps(sigma, 1.0, 30)], 1e-3, name) <= 1.0
    assert epsilon_spent([GaussianSteps(0.97 * sigma, 1.0, 30)], 1e-3, name) > 0.98


def test_bad_arguments_are_refused_naming_them():
    with pytest.raises(ValueError, match="noise_multiplier"):
        GaussianSteps(0.0, 1.0, 1)
    with pytest.raises(ValueError, match="sample_rate"):
        GaussianSteps(1.0, 1.5, 1)
    with pytest.raises(ValueError, match="delta"):
        epsilon_spent([GaussianSteps(1.0, 1.0, 1)], delta=0.0)
    with pytest.raises(ValueError, match="accountant"):
        epsilon_spent([GaussianSteps(1.0, 1.0, 1)], 1e-3, accountant="gdp")
    with pytest.raises(ValueError, match="target_epsilon"):
        noise_multiplier_for(-1.0, 1e-3, 1.0, 10)
