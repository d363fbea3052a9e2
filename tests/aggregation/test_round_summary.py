"""Per-round record: sample-weighted training loss, pooled score, contributors, rejections and
incomplete reports."""

import math

import pytest

from consortium.aggregation.round_summary import summarise_round
from consortium.protocol.site_result import SiteResult


@pytest.fixture
def results():
    return {
        "a": SiteResult(n_samples=100, train_loss=0.5, val_n=50, val_score_sum=40, val_metric="accuracy", local_steps=13),
        "b": SiteResult(n_samples=300, train_loss=0.3, val_n=30, val_score_sum=20, val_metric="accuracy", local_steps=38),
    }


def test_mean_train_loss_is_sample_weighted(results):
    # (100 * 0.5 + 300 * 0.3) / 400 = 140 / 400
    assert summarise_round(3, results).mean_train_loss == pytest.approx(0.35)


def test_pooled_score_is_total_correct_over_total_n(results):
    # (40 + 20) / (50 + 30), not the mean of 0.8 and 0.667
    assert summarise_round(3, results).pooled_score == pytest.approx(0.75)


def test_summary_counts_the_sites_and_keeps_the_round(results):
    summary = summarise_round(3, results)

    assert (summary.round, summary.sites, summary.contributors, summary.metric) == (3, 2, ["a", "b"], "accuracy")
    assert summary.local_steps == {"a": 13, "b": 38}


def test_rejections_are_recorded_with_their_reason(results):
    summary = summarise_round(3, results, {"c": "update from c: tensor 'w' has 3 non-finite values"})

    assert summary.rejected == {"c": "update from c: tensor 'w' has 3 non-finite values"}
    assert "rejected: c (update from c" in summary.line()


def test_a_site_without_reporting_fields_is_left_out_of_those_statistics(results):
    results["c"] = SiteResult(n_samples=1000, missing=("train_loss", "val_n", "val_score_sum"))

    summary = summarise_round(3, results)

    assert summary.sites == 3
    assert summary.mean_train_loss == pytest.approx(0.35)
    assert summary.pooled_score == pytest.approx(0.75)
    assert summary.incomplete == {"c": ["train_loss", "val_n", "val_score_sum"]}
    assert "incomplete: c" in summary.line()


def test_statistics_are_nan_when_no_site_reports_them():
    summary = summarise_round(1, {"a": SiteResult(n_samples=10)})

    assert math.isnan(summary.pooled_score) and math.isnan(summary.mean_train_loss)
    assert summary.metric == "score"


def test_empty_round_raises_naming_the_round():
    with pytest.raises(ValueError, match="round 7"):
        summarise_round(7, {})


def test_line_contains_the_numbers(results):
    line = summarise_round(3, results).line(total_sites=4)

    assert "round   3" in line
    assert "sites 2/4" in line
    assert "0.3500" in line
    assert "0.750" in line


def test_line_without_total_sites_has_no_fraction(results):
    line = summarise_round(3, results).line()

    assert "sites 2 " in line
    assert "/" not in line


def test_to_dict_has_the_record_fields(results):
    d = summarise_round(3, results, finished_at=12.5).to_dict()

    assert d["round"] == 3 and d["sites"] == 2 and d["finished_at"] == 12.5
    assert d["mean_train_loss"] == pytest.approx(0.35) and d["pooled_score"] == pytest.approx(0.75)
    assert d["contributors"] == ["a", "b"] and d["rejected"] == {} and d["incomplete"] == {}
