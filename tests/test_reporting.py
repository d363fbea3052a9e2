"""The job report reads the personalised scores from the global model's cross-site metrics."""

from __future__ import annotations

import json

import pytest

from consortium.reporting import GLOBAL, load_results, write_report

SITES = ("cleveland", "hungary")


def job_result(tmp_path, personalised: dict[str, tuple[float, int]]):
    (tmp_path / "progress.jsonl").write_text(
        json.dumps({"round": 0, "metric": "dice", "pooled_score": 0.5, "mean_train_loss": 0.4}) + "\n")
    table = {}
    for site in SITES:
        glob = {"dice": 0.8, "n": 10, "score_sum": 8.0}
        if site in personalised:
            glob |= {"dice_personalised": personalised[site][0], "personalise_epochs": personalised[site][1]}
        table[site] = {"SRV_FL_global_model.pt": glob} | {s: {"dice": 0.5, "n": 10, "score_sum": 5.0} for s in SITES}
    (tmp_path / "cross_site_val").mkdir()
    (tmp_path / "cross_site_val" / "cross_val_results.json").write_text(json.dumps(table))
    return tmp_path


def test_personalised_scores_are_a_column_of_the_report_not_a_sites_model(tmp_path):
    res = load_results(job_result(tmp_path, {"cleveland": (0.9, 5), "hungary": (0.7, 5)}))

    assert list(res.scores.columns) == [GLOBAL, *SITES]
    assert res.personalised.to_dict() == {"cleveland": 0.9, "hungary": 0.7} and res.personalise_epochs == 5
    assert "| cleveland | 10 | 0.800 | 0.900 | 0.500 | 0.500 |" in write_report(res).read_text()


def test_a_job_without_personalisation_has_no_personalised_column(tmp_path):
    res = load_results(job_result(tmp_path, {}))

    assert res.personalised is None
    assert "personalised" not in write_report(res).read_text()


def test_sites_that_personalised_differently_are_refused(tmp_path):
    with pytest.raises(ValueError, match="different numbers of epochs"):
        load_results(job_result(tmp_path, {"cleveland": (0.9, 5), "hungary": (0.7, 2)}))
