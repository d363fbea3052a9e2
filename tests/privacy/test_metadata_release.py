"""What of a result's metadata leaves a DP site: the contract's release rules, applied."""

from __future__ import annotations

import pytest

from consortium.privacy.release import coarsen_count, coarsen_sum, released_meta
from consortium.protocol.site_result import FIELDS, ReleaseRule

META = {"n_samples": 203, "local_steps": 26, "fednova_a": 26.0, "train_loss": 0.41, "train_seconds": 0.2,
        "val_metric": "accuracy", "val_n": 67, "val_score_sum": 53.0, "val_loss": 0.5, "secret_extra": 1}


def test_exact_fields_travel_drop_fields_and_unknown_keys_do_not():
    out = released_meta(META)

    assert out["local_steps"] == 26 and out["fednova_a"] == 26.0
    dropped = {k for k, s in FIELDS.items() if s.release == ReleaseRule.DROP}
    assert not dropped & set(out) and "secret_extra" not in out


def test_counts_and_sums_are_coarsened_and_stay_valid():
    out = released_meta(META, count_step=10)

    assert out["n_samples"] == 200 and out["val_n"] == 70
    assert out["val_score_sum"] == pytest.approx(0.79 * 70)  # round(53/67, 2) = 0.79


def test_a_small_count_never_becomes_zero():
    assert coarsen_count(3, 10) == 10 and coarsen_count(0, 10) == 10


def test_keys_asked_for_are_kept():
    assert released_meta({"n_samples": 5, "dp_release": {"x": 1}}, keep={"dp_release"})["dp_release"] == {"x": 1}


def test_a_sum_without_its_count_is_removed():
    assert "val_score_sum" not in released_meta({"n_samples": 5, "val_score_sum": 3.0})


def test_coarse_sum_is_the_rounded_mean_times_the_coarse_count():
    assert coarsen_sum(2.0, 3, 10, decimals=1) == pytest.approx(7.0)
