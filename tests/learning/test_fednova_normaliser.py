"""FedNova's a_k against hand-computed values (Wang et al. 2020)."""

from __future__ import annotations

import pytest
from numpy.testing import assert_allclose

from consortium.learning.fednova import local_normaliser, normaliser_momentum, normaliser_proximal, normaliser_sgd


def test_sgd_normaliser_is_the_number_of_steps():
    assert normaliser_sgd(7) == 7.0


def test_momentum_normaliser_by_hand():
    # tau=3, rho=0.5: [3 - 0.5 * (1 - 0.125) / 0.5] / 0.5 = (3 - 0.875) / 0.5 = 4.25
    assert_allclose(normaliser_momentum(3, 0.5), 4.25)


def test_momentum_normaliser_sums_the_momentum_weights():
    # a = sum_{t=0}^{tau-1} (1 - rho^(t+1)) / (1 - rho): the weight each gradient gets by the end
    tau, rho = 6, 0.9
    expected = sum((1 - rho ** (t + 1)) / (1 - rho) for t in range(tau))
    assert_allclose(normaliser_momentum(tau, rho), expected)


def test_proximal_normaliser_by_hand():
    # tau=2, lr=0.1, mu=1: [1 - 0.9^2] / 0.1 = 0.19 / 0.1 = 1.9
    assert_allclose(normaliser_proximal(2, 0.1, 1.0), 1.9)


def test_proximal_normaliser_tends_to_tau_as_mu_vanishes():
    assert_allclose(normaliser_proximal(10, 0.05, 1e-9), 10.0, rtol=1e-6)


def test_dispatch_picks_the_optimiser_used():
    assert local_normaliser(4, 0.05) == 4.0
    assert_allclose(local_normaliser(3, 0.05, momentum=0.5), 4.25)
    assert_allclose(local_normaliser(2, 0.1, mu=1.0), 1.9)


def test_momentum_with_proximal_term_is_refused():
    with pytest.raises(ValueError, match="momentum=0.9 together with a proximal term mu=0.1"):
        local_normaliser(5, 0.05, momentum=0.9, mu=0.1)


@pytest.mark.parametrize("tau", [0, -1, 2.5, True])
def test_steps_must_be_a_positive_integer(tau):
    with pytest.raises(ValueError, match="tau"):
        normaliser_sgd(tau)


def test_proximal_step_must_contract():
    with pytest.raises(ValueError, match="0 < lr \\* mu < 1"):
        normaliser_proximal(3, 1.0, 2.0)
