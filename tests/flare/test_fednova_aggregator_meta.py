"""FedNova's aggregator refuses results without tau_k and a_k instead of averaging them."""

from __future__ import annotations

import pytest

from consortium.flare.fednova_aggregator import FedNovaAggregator


@pytest.fixture
def meta():
    return {"n_samples": 10, "train_loss": 0.5, "val_n": 5, "val_score_sum": 4.0, "val_metric": "accuracy",
            "local_steps": 3, "fednova_a": 3.0}


def test_complete_meta_is_accepted(meta):
    FedNovaAggregator().check_meta("hungary", meta)


@pytest.mark.parametrize("field", ["local_steps", "fednova_a"])
def test_missing_fednova_field_is_named(meta, field):
    del meta[field]
    with pytest.raises(ValueError, match=f"result from hungary lacks meta field '{field}'"):
        FedNovaAggregator().check_meta("hungary", meta)


def test_non_positive_normaliser_is_refused(meta):
    meta["fednova_a"] = 0.0
    with pytest.raises(ValueError, match="fednova_a = 0.0 must be positive"):
        FedNovaAggregator().check_meta("hungary", meta)


def test_unknown_tau_eff_rule_is_refused():
    with pytest.raises(ValueError, match="tau_eff must be one of"):
        FedNovaAggregator(tau_eff="median")
