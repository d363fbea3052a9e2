"""Federated standardisation: pooled moments must equal statistics of the concatenated data."""

import numpy as np
import pytest

from consortium.data.standardisation import (
    FeatureMoments,
    Standardiser,
    local_moments,
    pooled_standardiser,
)


@pytest.fixture
def chunks():
    rng = np.random.default_rng(0)
    return [rng.normal(loc=i, scale=1 + i, size=(n, 3)) for i, n in enumerate((5, 12, 1))]


def test_local_moments_by_hand():
    x = np.array([[1.0, 2.0], [3.0, -1.0]])

    m = local_moments(x, min_count=1)

    assert m.n == 2
    np.testing.assert_allclose(m.total, [4.0, 1.0])
    np.testing.assert_allclose(m.total_sq, [10.0, 5.0])


def test_pooled_standardiser_by_hand():
    # values 1, 3 at one site and 5 at another: mean 3, population variance (4 + 0 + 4) / 3
    moments = [local_moments(np.array([[1.0], [3.0]]), min_count=1), local_moments(np.array([[5.0]]), min_count=1)]

    s = pooled_standardiser(moments)

    np.testing.assert_allclose(s.mean, [3.0])
    np.testing.assert_allclose(s.std, [np.sqrt(8.0 / 3.0)])


def test_pooled_standardiser_equals_statistics_of_the_concatenation(chunks):
    s = pooled_standardiser([local_moments(c, min_count=1) for c in chunks])

    pooled = np.concatenate(chunks)
    np.testing.assert_allclose(s.mean, pooled.mean(axis=0))
    np.testing.assert_allclose(s.std, pooled.std(axis=0))


def test_standardised_pooled_data_has_mean_zero_and_std_one(chunks):
    s = pooled_standardiser([local_moments(c, min_count=1) for c in chunks])

    z = s(np.concatenate(chunks))

    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1.0, rtol=1e-5)


def test_constant_feature_gets_std_one():
    x1 = np.array([[7.0, 1.0], [7.0, 2.0]])
    x2 = np.array([[7.0, 3.0]])

    s = pooled_standardiser([local_moments(x1, min_count=1), local_moments(x2, min_count=1)])

    assert s.std[0] == 1.0
    np.testing.assert_allclose(s.mean[0], 7.0)


def test_mismatched_feature_widths_raise():
    moments = [local_moments(np.ones((2, 3)), min_count=1), local_moments(np.ones((2, 4)), min_count=1)]

    with pytest.raises(ValueError, match="features"):
        pooled_standardiser(moments)


def test_empty_moment_list_raises():
    with pytest.raises(ValueError):
        pooled_standardiser([])


def test_zero_pooled_count_raises():
    empty = FeatureMoments(0, np.zeros(2), np.zeros(2))

    with pytest.raises(ValueError, match="n = 0 must be positive"):
        pooled_standardiser([empty])


def test_a_site_with_too_few_rows_refuses_to_share_moments():
    with pytest.raises(ValueError, match=r"3 rows \(< min_count=10\)"):
        local_moments(np.ones((3, 2)))


def test_non_finite_moments_are_refused():
    good = FeatureMoments(5, np.ones(2), np.ones(2) * 2)
    bad = FeatureMoments(5, np.array([1.0, np.nan]), np.ones(2))
    with pytest.raises(ValueError, match="moments 1"):
        pooled_standardiser([good, bad])


def test_feature_moments_round_trip_through_dict():
    m = FeatureMoments(3, np.array([1.5, -2.0]), np.array([4.25, 9.0]))

    back = FeatureMoments.from_dict(m.to_dict())

    assert back.n == 3
    np.testing.assert_array_equal(back.total, m.total)
    np.testing.assert_array_equal(back.total_sq, m.total_sq)


def test_standardiser_round_trip_through_dict():
    s = Standardiser(np.array([1.0, 2.0]), np.array([0.5, 4.0]))

    back = Standardiser.from_dict(s.to_dict())

    np.testing.assert_array_equal(back.mean, s.mean)
    np.testing.assert_array_equal(back.std, s.std)


def test_standardiser_applies_mean_and_std_by_hand():
    s = Standardiser(np.array([1.0, 2.0]), np.array([0.5, 4.0]))

    z = s(np.array([[2.0, 10.0]]))

    np.testing.assert_allclose(z, [[2.0, 2.0]])
    assert z.dtype == np.float32
