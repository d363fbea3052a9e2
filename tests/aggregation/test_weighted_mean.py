"""FedAvg combination: sample weights and the weighted mean of site updates."""

import numpy as np
import pytest

from consortium.aggregation.weighted_mean import sample_weights, weighted_mean


@pytest.fixture
def two_updates():
    a = {"w": np.array([1.0, 2.0], dtype=np.float32), "b": np.array([0.0], dtype=np.float32)}
    b = {"w": np.array([3.0, 6.0], dtype=np.float32), "b": np.array([4.0], dtype=np.float32)}
    return a, b


def test_sample_weights_by_hand():
    np.testing.assert_allclose(sample_weights([1, 3]), [0.25, 0.75])


def test_sample_weights_of_three_sites_by_hand():
    np.testing.assert_allclose(sample_weights([199, 172, 30]), [199 / 401, 172 / 401, 30 / 401])


def test_sample_weights_of_one_site_is_one():
    np.testing.assert_allclose(sample_weights([17]), [1.0])


@pytest.mark.parametrize("counts", [[3, 0], [3, -1], [0]])
def test_sample_weights_rejects_non_positive_counts(counts):
    with pytest.raises(ValueError, match="positive"):
        sample_weights(counts)


def test_sample_weights_rejects_an_empty_list():
    with pytest.raises(ValueError):
        sample_weights([])


def test_weighted_mean_of_two_updates_by_hand(two_updates):
    # 0.25 * [1, 2] + 0.75 * [3, 6] = [2.5, 5.0]; 0.25 * 0 + 0.75 * 4 = 3
    result = weighted_mean(two_updates, [0.25, 0.75])

    np.testing.assert_allclose(result["w"], [2.5, 5.0])
    np.testing.assert_allclose(result["b"], [3.0])


def test_weighted_mean_of_three_updates_by_hand():
    updates = [{"w": np.array([[1.0, 0.0]])}, {"w": np.array([[0.0, 1.0]])}, {"w": np.array([[2.0, 2.0]])}]

    result = weighted_mean(updates, [0.5, 0.3, 0.2])

    # [0.5 + 0.4, 0.3 + 0.4]
    np.testing.assert_allclose(result["w"], [[0.9, 0.7]])


def test_weighted_mean_uses_weights_as_given(two_updates):
    # unnormalised weights 1, 1 give the sum
    result = weighted_mean(two_updates, [1.0, 1.0])

    np.testing.assert_allclose(result["w"], [4.0, 8.0])


def test_weighted_mean_keeps_the_dtype(two_updates):
    result = weighted_mean(two_updates, [0.5, 0.5])

    assert result["w"].dtype == np.float32


def test_weighted_mean_with_sample_weights_is_fedavg(two_updates):
    # sites with 10 and 30 samples: (10 * [1, 2] + 30 * [3, 6]) / 40
    result = weighted_mean(two_updates, sample_weights([10, 30]))

    np.testing.assert_allclose(result["w"], [2.5, 5.0])


def test_weighted_mean_rejects_mismatched_names_naming_the_tensor(two_updates):
    a, _ = two_updates
    renamed = {"w": a["w"], "bias": a["b"]}

    with pytest.raises(ValueError, match="bias"):
        weighted_mean([a, renamed], [0.5, 0.5])


def test_weighted_mean_rejects_mismatched_shapes_naming_the_tensor(two_updates):
    a, _ = two_updates
    wider = {"w": np.zeros(3, dtype=np.float32), "b": a["b"]}

    with pytest.raises(ValueError, match="'w'"):
        weighted_mean([a, wider], [0.5, 0.5])


def test_weighted_mean_rejects_a_weight_count_mismatch(two_updates):
    with pytest.raises(ValueError, match="one weight per update"):
        weighted_mean(two_updates, [1.0])


def test_weighted_mean_rejects_no_updates():
    with pytest.raises(ValueError):
        weighted_mean([], [])
