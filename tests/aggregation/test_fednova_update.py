"""FedNova's server update by hand, and objective consistency on quadratics with a known optimum."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from consortium.aggregation.fednova import TauEff, fednova_update
from consortium.aggregation.weighted_mean import sample_weights, weighted_mean


def test_update_by_hand():
    # p = (1/4, 3/4); d = (4/2, 6/3) = (2, 2); tau_eff = 1/4*2 + 3/4*3 = 2.75; update = 2.75 * 2 = 5.5
    out = fednova_update([{"w": np.array([4.0])}, {"w": np.array([6.0])}], [1, 3], [2.0, 3.0], [2, 3])
    assert_allclose(out["w"], [5.5])


def test_tau_eff_from_steps_rule():
    # a = (1, 1), tau = (2, 4), p = (1/2, 1/2): tau_eff = 3; update = 3 * (1/2*1 + 1/2*3) = 6
    out = fednova_update([{"w": np.array([1.0])}, {"w": np.array([3.0])}], [5, 5], [1.0, 1.0], [2, 4], TauEff.STEPS)
    assert_allclose(out["w"], [6.0])


def test_equal_work_reduces_to_fedavg():
    rng = np.random.default_rng(0)
    updates = [{"w": rng.normal(size=3)} for _ in range(3)]
    n = [10, 20, 30]
    nova = fednova_update(updates, n, [5.0, 5.0, 5.0], [5, 5, 5])
    assert_allclose(nova["w"], weighted_mean(updates, sample_weights(n))["w"])


@pytest.mark.parametrize("a", [[0.0, 1.0], [-1.0, 1.0], [float("nan"), 1.0]])
def test_non_positive_normaliser_is_refused(a):
    with pytest.raises(ValueError, match="normalisers a_k must be positive"):
        fednova_update([{"w": np.ones(1)}, {"w": np.ones(1)}], [1, 1], a, [1, 1])


def test_missing_metadata_count_is_refused():
    with pytest.raises(ValueError, match="need one n, a and tau per update"):
        fednova_update([{"w": np.ones(1)}, {"w": np.ones(1)}], [1, 1], [1.0], [1, 1])


# --- objective consistency on quadratics -------------------------------------------------------
# site k: f_k(w) = h_k/2 * ||w - c_k||^2, weight p_k; global optimum w* = sum p_k h_k c_k / sum p_k h_k.
# Local gradient descent for tau_k steps from w gives w - w_k = (1 - (1 - lr h_k)^tau_k) (w - c_k).
CENTRES = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
CURVATURE = np.array([1.0, 2.0, 0.5])
N = np.array([100, 100, 100])
STEPS = [1, 10, 40]  # very different local work


def _local_update(w, k, lr):
    return {"w": (1 - (1 - lr * CURVATURE[k]) ** STEPS[k]) * (CENTRES[k] - w)}


def _fixed_point(aggregate, lr, rounds=3000):
    w = np.zeros(2)
    for _ in range(rounds):
        updates = [_local_update(w, k, lr) for k in range(3)]
        w = w + aggregate(updates, lr)["w"]
    return w


def _fedavg(updates, lr):
    return weighted_mean(updates, sample_weights(N))


def _fednova(updates, lr):
    return fednova_update(updates, N, [float(t) for t in STEPS], STEPS)


def _optimum():
    p = N / N.sum()
    return (p * CURVATURE) @ CENTRES / (p * CURVATURE).sum()


def test_fedavg_stays_biased_towards_sites_with_more_local_steps_whatever_the_step_size():
    for lr in (0.02, 0.005, 0.001):
        gap = np.linalg.norm(_fixed_point(_fedavg, lr) - _optimum())
        assert gap > 0.5, f"lr={lr}: FedAvg gap {gap:.3f}"


def test_fednova_reaches_the_true_optimum_and_its_error_shrinks_with_the_step_size():
    gaps = [np.linalg.norm(_fixed_point(_fednova, lr) - _optimum()) for lr in (0.02, 0.005, 0.001)]
    assert gaps[0] < 0.25
    assert gaps[2] < 0.01
    assert gaps[0] > gaps[1] > gaps[2]


def test_server_momentum_by_hand():
    from consortium.aggregation.fednova import server_momentum

    v1 = server_momentum(None, {"w": np.array([1.0])}, 0.5)
    v2 = server_momentum(v1, {"w": np.array([2.0])}, 0.5)
    assert_allclose(v1["w"], [1.0])
    assert_allclose(v2["w"], [2.5])  # 0.5 * 1 + 2
    assert_allclose(server_momentum(v2, {"w": np.array([2.0])}, 0.0)["w"], [2.0])


def test_server_momentum_must_be_below_one():
    from consortium.aggregation.fednova import server_momentum

    with pytest.raises(ValueError, match="beta must be in"):
        server_momentum(None, {"w": np.ones(1)}, 1.0)
