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


def test_the_same_rule_runs_over_ckks_ciphertexts_with_the_production_sum():
    """The encrypted round as it runs: each site pre-weights and encrypts, the server adds with
    the production :class:`~consortium.crypto.packed.CiphertextSum` (coefficient 1 only) under
    :class:`~consortium.aggregation.weighting.PreWeighted`, the sites decrypt and apply the scale."""
    import tenseal as ts

    from consortium.aggregation.weighting import PreWeighted
    from consortium.crypto.packed import CiphertextSum

    ctx = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=8192, coeff_mod_bit_sizes=[60, 40, 40, 60])
    ctx.global_scale = 2**40
    inner = FedNovaWeighting()
    weighting = PreWeighted(inner)
    encrypted = [[ts.ckks_vector(ctx, (u["w"].astype(np.float64) * inner.coefficient(r)).tolist())]
                 for u, r in zip(UPDATES, RESULTS, strict=True)]

    rule = WeightedSum(CiphertextSum())
    for x, r in zip(encrypted, RESULTS, strict=True):
        rule.add(x, weighting.coefficient(r))
    total = rule.result(weighting.scale(RESULTS))
    decrypted = np.array(total.ciphertexts[0].decrypt()) * total.scale

    np.testing.assert_allclose(decrypted, streamed(inner)["w"], atol=1e-4)
    with pytest.raises(ValueError, match="only adds"):  # the server never multiplies a ciphertext
        WeightedSum(CiphertextSum()).add(encrypted[0], inner.coefficient(RESULTS[0]))


def test_numpy_algebra_accumulates_in_float64():
    algebra = NumpyAlgebra()
    acc = algebra.scaled({"w": np.array([1.0], dtype=np.float32)}, 1e-8)
    assert acc["w"].dtype == np.float64
