"""Per-site update checks: layout, dtype, finite values, norm bound."""

from __future__ import annotations

import numpy as np
import pytest

from consortium.aggregation.checks import (
    DEFAULT_CHECKS,
    NormBound,
    check_dtype,
    check_finite,
    check_layout,
    run_checks,
    update_norm,
)

MODEL = {"w": np.zeros((2, 2), dtype=np.float32), "b": np.zeros(2, dtype=np.float32)}


def ok():
    return {"w": np.ones((2, 2), dtype=np.float32), "b": np.ones(2, dtype=np.float32)}


def test_a_well_formed_update_passes_every_default_check():
    run_checks("a", ok(), MODEL, DEFAULT_CHECKS)


def test_integer_update_is_rejected():
    bad = ok() | {"w": np.ones((2, 2), dtype=np.int64)}

    with pytest.raises(ValueError, match="update from a: tensor 'w' has dtype int64, the global model's is float32"):
        run_checks("a", bad, MODEL)


def test_float64_update_for_a_float32_model_is_rejected():
    with pytest.raises(ValueError, match="dtype float64"):
        check_dtype(ok() | {"b": np.ones(2)}, MODEL)


def test_without_a_global_model_only_floating_point_passes():
    check_dtype(ok(), None)
    with pytest.raises(ValueError, match="expected floating point"):
        check_dtype({"w": np.ones(2, dtype=np.int32)}, None)


@pytest.mark.parametrize("update, why", [
    ({"w": np.ones((2, 2), dtype=np.float32)}, r"missing \['b'\]"),
    (ok() | {"x": np.ones(1, dtype=np.float32)}, r"unexpected \['x'\]"),
    (ok() | {"b": np.ones(3, dtype=np.float32)}, r"tensor 'b' has shape \(3,\)"),
])
def test_layout_other_than_the_global_model_is_rejected(update, why):
    with pytest.raises(ValueError, match=why):
        check_layout(update, MODEL)


def test_non_finite_values_are_counted():
    bad = ok() | {"w": np.array([[np.nan, np.inf], [0, 1]], dtype=np.float32)}

    with pytest.raises(ValueError, match="tensor 'w' has 2 non-finite values"):
        check_finite(bad, MODEL)


def test_update_norm_by_hand():
    assert update_norm({"a": np.array([3.0], dtype=np.float32), "b": np.array([[4.0]], dtype=np.float32)}) == 5.0


def test_norm_bound_rejects_only_above_the_bound():
    update = {"a": np.array([3.0, 4.0], dtype=np.float32)}
    NormBound(5.0)(update, None)
    with pytest.raises(ValueError, match="update norm 5 exceeds the bound 4.99"):
        NormBound(4.99)(update, None)


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), "5"])
def test_norm_bound_must_be_positive(bad):
    with pytest.raises(ValueError, match="max_norm"):
        NormBound(bad)


def test_update_norm_is_the_float64_norm_of_every_tensor_as_one_vector():
    rng = np.random.default_rng(3)
    big = rng.standard_normal((300, 400)).astype(np.float32)
    update = {"w": big[:, ::2], "b": np.float32(2.5), "c": rng.standard_normal(7).astype(np.float32)}  # strided, 0-d
    flat = np.concatenate([np.ravel(np.asarray(v, dtype=np.float64)) for v in update.values()])
    assert update_norm(update) == pytest.approx(float(np.linalg.norm(flat)), rel=1e-12)


def test_a_cosine_given_the_norms_is_the_cosine_computed_without_them():
    from consortium.aggregation.alerts import cosine

    rng = np.random.default_rng(4)
    u = {k: rng.standard_normal(50).astype(np.float32) for k in "ab"}
    d = {k: rng.standard_normal(50).astype(np.float32) for k in "ab"}
    flat_u, flat_d = (np.concatenate([x[k].astype(np.float64) for k in "ab"]) for x in (u, d))
    expected = float(flat_u @ flat_d / np.linalg.norm(flat_u) / np.linalg.norm(flat_d))
    assert cosine(u, d) == pytest.approx(expected, rel=1e-12)
    assert cosine(u, d, (update_norm(u), update_norm(d))) == pytest.approx(expected, rel=1e-12)
    assert cosine(u, {"a": d["a"]}) is None and cosine(u, None) is None
