"""Per-round report: sample-weighted training loss and pooled accuracy from the sites' counts."""

import math

import pytest

from consortium.aggregation.round_summary import SiteRoundReport, summarise_round


@pytest.fixture
def reports():
    return [
        SiteRoundReport(site="a", n_samples=100, train_loss=0.5, val_n=50, val_score_sum=40),
        SiteRoundReport(site="b", n_samples=300, train_loss=0.3, val_n=30, val_score_sum=20),
    ]


def test_mean_train_loss_is_sample_weighted(reports):
    # (100 * 0.5 + 300 * 0.3) / 400 = 140 / 400
    summary = summarise_round(3, reports)

    assert summary.mean_train_loss == pytest.approx(0.35)


def test_pooled_score_is_total_correct_over_total_n(reports):
    # (40 + 20) / (50 + 30), not the mean of 0.8 and 0.667
    summary = summarise_round(3, reports)

    assert summary.pooled_score == pytest.approx(0.75)


def test_summary_counts_the_sites_and_keeps_the_round(reports):
    summary = summarise_round(3, reports)

    assert (summary.round, summary.sites) == (3, 2)


def test_pooled_score_is_nan_without_test_rows():
    summary = summarise_round(1, [SiteRoundReport("a", 10, 0.2, 0, 0)])

    assert math.isnan(summary.pooled_score)


def test_empty_round_raises_naming_the_round():
    with pytest.raises(ValueError, match="round 7"):
        summarise_round(7, [])


def test_line_contains_the_numbers(reports):
    line = summarise_round(3, reports).line(total_sites=4)

    assert "round   3" in line
    assert "sites 2/4" in line
    assert "0.3500" in line
    assert "0.750" in line


def test_line_without_total_sites_has_no_fraction(reports):
    line = summarise_round(3, reports).line()

    assert "sites 2 " in line
    assert "/" not in line


def test_to_dict_has_the_summary_fields(reports):
    d = summarise_round(3, reports).to_dict()

    assert d == {"round": 3, "sites": 2, "mean_train_loss": pytest.approx(0.35), "pooled_score": pytest.approx(0.75), "metric": "accuracy"}
