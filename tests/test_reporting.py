"""The job report reads the personalised scores from the global model's cross-site metrics."""

from __future__ import annotations

import json

import pytest

from consortium.protocol.evaluation import Evaluation
from consortium.protocol.round_record import RoundRecord
from consortium.reports.job_report import GLOBAL, load_results, write_report

SITES = ("cleveland", "hungary")


def job_result(tmp_path, personalised: dict[str, tuple[float, int]]):
    (tmp_path / "progress.jsonl").write_text(
        RoundRecord(round=0, sites=2, metric="dice", pooled_score=0.5, mean_train_loss=0.4,
                    contributors=list(SITES)).to_json_line() + "\n")
    table = {}
    for site in SITES:
        glob = Evaluation("dice", 10, 8.0, loss=0.2)
        if site in personalised:
            glob = glob.personalise(*personalised[site])
        table[site] = {"SRV_FL_global_model.pt": glob.to_dict()} | {s: Evaluation("dice", 10, 5.0).to_dict() for s in SITES}
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


def _rounds(tmp_path, records):
    (tmp_path / "progress.jsonl").write_text("".join(
        RoundRecord(**{"sites": 2, "metric": "dice", "pooled_score": 0.5, "mean_train_loss": 0.4} | r).to_json_line() + "\n"
        for r in records))


def test_the_report_names_rejections_missing_sites_alerts_and_an_early_stop(tmp_path):
    job_result(tmp_path, {})
    _rounds(tmp_path, [
        {"round": 0, "contributors": ["cleveland", "hungary"], "rejected": {}, "alerts": {}},
        {"round": 1, "contributors": ["cleveland"], "rejected": {"hungary": "update norm 1e+04 exceeds the bound 10"},
         "alerts": {"cleveland": "norm 9x the median"}},
        {"round": 2, "contributors": ["hungary"], "rejected": {}, "alerts": {}},
    ])
    (tmp_path / "training_status.json").write_text(json.dumps({"status": "stopped", "round": 3, "reason": "round 3: too few"}))

    text = write_report(load_results(tmp_path)).read_text()

    assert "**Training stopped early**: round 3: too few" in text
    assert "| 1 | cleveland | rejected hungary: update norm 1e+04 exceeds the bound 10; ALERT cleveland: norm 9x the median |" in text
    assert "| 2 | hungary | no result from cleveland |" in text
    assert "| 0 |" not in text  # a round with every site is not an event


def test_the_report_shows_each_sites_epsilon_round_by_round(tmp_path):
    job_result(tmp_path, {})
    _rounds(tmp_path, [{"round": 0, "epsilon": {"cleveland": 1.5, "hungary": 1.25}},
                       {"round": 1, "epsilon": {"cleveland": 2.0}}])

    text = write_report(load_results(tmp_path)).read_text()

    assert "| round | cleveland | hungary |" in text
    assert "| 0 | 1.500 | 1.250 |" in text and "| 1 | 2.000 | – |" in text


def test_a_job_without_events_or_dp_has_neither_section(tmp_path):
    text = write_report(load_results(job_result(tmp_path, {}))).read_text()
    assert "what happened" not in text and "ε spent" not in text


def test_an_evaluation_that_breaks_the_contract_is_refused_naming_site_model_and_field(tmp_path):
    job_result(tmp_path, {})
    path = tmp_path / "cross_site_val" / "cross_val_results.json"
    table = json.loads(path.read_text())
    del table["hungary"]["cleveland"]["score_sum"]
    path.write_text(json.dumps(table))

    with pytest.raises(ValueError, match="site 'hungary', model 'cleveland': field 'score_sum' missing"):
        load_results(tmp_path)


def test_an_evaluation_of_another_metric_than_the_rounds_is_refused(tmp_path):
    job_result(tmp_path, {})
    path = tmp_path / "cross_site_val" / "cross_val_results.json"
    table = json.loads(path.read_text())
    table["cleveland"]["hungary"] = Evaluation("accuracy", 10, 5.0).to_dict()
    path.write_text(json.dumps(table))

    with pytest.raises(ValueError, match=r"site 'cleveland' scored \['accuracy'\], the rounds 'dice'"):
        load_results(tmp_path)
