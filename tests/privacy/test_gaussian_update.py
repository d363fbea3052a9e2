"""The update-level Gaussian mechanism: clipping of the whole update and the noise's scale."""

from __future__ import annotations

import numpy as np
import pytest

from consortium.privacy.gaussian import clip_update, gaussian_update, global_norm, sensitivity


def test_norm_is_taken_over_every_array_together():
    assert global_norm({"a": np.array([3.0]), "b": np.array([[4.0]])}) == pytest.approx(5.0)


def test_a_long_update_is_scaled_onto_the_ball_and_keeps_its_direction():
    update = {"a": np.array([3.0, 0.0], dtype=np.float32), "b": np.array([4.0], dtype=np.float32)}

    clipped, norm = clip_update(update, 1.0)

    assert norm == pytest.approx(5.0)
    np.testing.assert_allclose(clipped["a"], [0.6, 0.0], rtol=1e-5)
    np.testing.assert_allclose(clipped["b"], [0.8], rtol=1e-5)
    assert clipped["a"].dtype == np.float32


def test_a_short_update_is_unchanged():
    update = {"w": np.array([0.1, -0.2])}

    clipped, _ = clip_update(update, 1.0)

    np.testing.assert_array_equal(clipped["w"], update["w"])


def test_a_clipped_update_never_exceeds_c():
    rng = np.random.default_rng(0)
    for _ in range(200):
        update = {"w": rng.normal(scale=rng.uniform(0.01, 100), size=(7, 3)).astype(np.float32),
                  "b": rng.normal(size=5).astype(np.float32)}
        c = float(rng.uniform(0.01, 10))
        assert global_norm(clip_update(update, c)[0]) <= c


def test_noise_standard_deviation_is_sigma_times_c():
    update = {"w": np.zeros(200_000, dtype=np.float32)}

    noised = gaussian_update(update, clip_norm=0.5, noise_multiplier=1.5, rng=np.random.default_rng(1))

    assert float(np.std(noised["w"])) == pytest.approx(0.75, rel=0.01)
    assert abs(float(np.mean(noised["w"]))) < 0.01


def test_replace_one_adjacency_doubles_the_sensitivity_and_the_noise():
    update = {"w": np.zeros(200_000)}

    noised = gaussian_update(update, 0.5, 1.5, np.random.default_rng(1), adjacency="replace_one")

    assert sensitivity(0.5, "replace_one") == 1.0 and sensitivity(0.5) == 0.5
    assert float(np.std(noised["w"])) == pytest.approx(1.5, rel=0.01)


def test_same_seed_same_noise_different_seed_different_noise():
    update = {"w": np.ones(10)}
    a = gaussian_update(update, 1.0, 1.0, np.random.default_rng(7))["w"]
    b = gaussian_update(update, 1.0, 1.0, np.random.default_rng(7))["w"]
    c = gaussian_update(update, 1.0, 1.0, np.random.default_rng(8))["w"]
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("bad", [{"w": np.array([np.nan])}, {"w": np.array([1, 2])}])
def test_an_update_that_cannot_be_clipped_is_refused(bad):
    with pytest.raises(ValueError, match="update\\['w'\\]"):
        clip_update(bad, 1.0)


def test_bad_arguments_are_refused_naming_them():
    with pytest.raises(ValueError, match="clip_norm"):
        clip_update({"w": np.ones(2)}, 0.0)
    with pytest.raises(ValueError, match="noise_multiplier"):
        gaussian_update({"w": np.ones(2)}, 1.0, -1.0, np.random.default_rng())
    with pytest.raises(ValueError, match="adjacency"):
        sensitivity(1.0, "swap")
