"""Site weights and the streaming weighted sum: the same numbers as the closed forms, over
plaintext arrays and over CKKS ciphertexts (the rule only scales and adds)."""

from __future__ import annotations

import numpy as np
import pytest

from consortium.aggregation.combine import NumpyAlgebra, WeightedSum
from consortium.aggregation.fednova import TauEff, fednova_update
from consortium.aggregation.weighted_mean import sample_weights, weighted_mean
from consortium.aggregation.weighting import FedAvgWeighting, FedNovaWeighting, make_weighting
from consortium.protocol.site_result import SiteResult

UPDATES = [{"w": np.array([2.0, 2.0], dtype=np.float32)}, {"w": np.array([9.0, 0.0], dtype=np.float32)},
           {"w": np.array([-1.0, 4.0], dtype=np.float32)}]
RESULTS = [SiteResult(n_samples=10, local_steps=2, fednova_a=2.0), SiteResult(n_samples=30, local_steps=9, fednova_a=7.5),
           SiteResult(n_samples=20, local_steps=4, fednova_a=4.0)]


def streamed(weighting, updates=UPDATES, results=RESULTS, rule=None):
    rule = rule or WeightedSum()
    for u, r in zip(updates, results, strict=True):
        rule.add(u, weighting.coefficient(r))
    return rule.result(weighting.scale(results))


def test_fedavg_by_hand():
    out = streamed(FedAvgWeighting(), UPDATES[:2], RESULTS[:2])["w"]

    np.testing.assert_allclose(out, [0.25 * 2 + 0.75 * 9, 0.25 * 2], rtol=1e-7)


def test_fedavg_equals_the_held_weighted_mean():
    expected = weighted_mean(UPDATES, sample_weights([r.n_samples for r in RESULTS]))

    np.testing.assert_allclose(streamed(FedAvgWeighting())["w"], expected["w"], rtol=1e-6)


@pytest.mark.parametrize("rule", list(TauEff))
def test_fednova_equals_the_closed_form(rule):
    expected = fednova_update(UPDATES, [r.n_samples for r in RESULTS], [r.fednova_a for r in RESULTS],
                              [r.local_steps for r in RESULTS], rule)

    np.testing.assert_allclose(streamed(FedNovaWeighting(rule.value))["w"], expected["w"], rtol=1e-6)


def test_fednova_needs_steps_and_normaliser():
    with pytest.raises(ValueError, match="fednova_a"):
        FedNovaWeighting().check(SiteResult(n_samples=3, local_steps=2))
    with pytest.raises(ValueError, match="local_steps"):
        FedNovaWeighting().check(SiteResult(n_samples=3, fednova_a=2.0))
    FedAvgWeighting().check(SiteResult(n_samples=3))


def test_unknown_algorithm_and_tau_rule_are_refused():
    with pytest.raises(ValueError, match="algorithm must be 'fedavg' or 'fednova', got 'fedsgd'"):
        make_weighting("fedsgd")
    with pytest.raises(ValueError, match="tau_eff must be one of"):
        make_weighting("fednova", "epochs")


def test_sum_keeps_the_model_dtype_and_no_reference_to_the_updates():
    rule = WeightedSum()
    first = {"w": np.array([1.0, 2.0], dtype=np.float32)}
    rule.add(first, 1.0)
    first["w"][:] = 100.0  # the caller may reuse or free its buffer at once
    rule.add({"w": np.array([1.0, 1.0], dtype=np.float32)}, 1.0)

    out = rule.result(0.5)["w"]

    np.testing.assert_array_equal(out, [1.0, 1.5])
    assert out.dtype == np.float32


def test_sum_refuses_a_layout_change_midway():
    rule = WeightedSum()
    rule.add({"w": np.zeros(2, dtype=np.float32)}, 1.0)
    with pytest.raises(ValueError, match="shape"):
        rule.add({"w": np.zeros(3, dtype=np.float32)}, 1.0)


def test_empty_sum_is_an_error():
    with pytest.raises(ValueError, match="no update"):
        WeightedSum().result(1.0)


class CKKSAlgebra:
    """Flat CKKS vectors: scale by a plaintext number, add. What an encrypted round would plug in."""

    def scaled(self, x, c):
        return x * c

    def add_scaled(self, acc, x, c):
        return acc + x * c

    def finish(self, acc, scale):
        return acc * scale


def test_the_same_rule_runs_over_ckks_ciphertexts():
    import tenseal as ts

    ctx = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=8192, coeff_mod_bit_sizes=[60, 40, 40, 60])
    ctx.global_scale = 2**40
    weighting = FedNovaWeighting()
    encrypted = [{"w": ts.ckks_vector(ctx, u["w"].tolist())} for u in UPDATES]

    rule = WeightedSum(CKKSAlgebra())
    for u, r in zip(encrypted, RESULTS, strict=True):
        rule.add(u["w"], weighting.coefficient(r))
    decrypted = np.array(rule.result(weighting.scale(RESULTS)).decrypt())

    np.testing.assert_allclose(decrypted, streamed(weighting)["w"], atol=1e-4)


def test_numpy_algebra_accumulates_in_float64():
    algebra = NumpyAlgebra()
    acc = algebra.scaled({"w": np.array([1.0], dtype=np.float32)}, 1e-8)
    assert acc["w"].dtype == np.float64
