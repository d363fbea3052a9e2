"""The typed validation metrics: one writer, one reader, and a reader that fails closed."""

from __future__ import annotations

import json
import math

import pytest

from consortium.protocol.evaluation import Evaluation


def test_what_the_writer_writes_the_reader_reads_back_through_json():
    e = Evaluation("accuracy", 89, 60.0, loss=0.5).personalise(0.75, 5)

    assert Evaluation.from_dict(json.loads(json.dumps(e.to_dict()))) == e


def test_the_written_dict_is_flares_metrics_with_the_mean_under_the_metric_name():
    assert Evaluation("dice", 8, 6.0, loss=0.25).to_dict() == {"dice": 0.75, "loss": 0.25, "n": 8, "score_sum": 6.0,
                                                                "metric": "dice"}
    assert Evaluation("dice", 8, 6.0).personalise(0.9, 3).to_dict() == {
        "dice": 0.75, "n": 8, "score_sum": 6.0, "metric": "dice", "dice_personalised": 0.9, "personalise_epochs": 3}


def test_the_reader_recomputes_the_mean_instead_of_trusting_it():
    read = Evaluation.from_dict({"accuracy": 1.0, "n": 4, "score_sum": 1.0, "metric": "accuracy"})

    assert read.mean == 0.25 and read.to_dict()["accuracy"] == 0.25


def test_an_empty_test_split_has_no_mean():
    assert math.isnan(Evaluation("accuracy", 0, 0.0).mean)


@pytest.mark.parametrize("field", ["metric", "n", "score_sum"])
def test_a_missing_field_is_refused_naming_where_and_the_field(field):
    data = Evaluation("accuracy", 10, 7.0).to_dict()
    del data[field]

    with pytest.raises(ValueError, match=f"cleveland: field '{field}' missing"):
        Evaluation.from_dict(data, "cleveland")


@pytest.mark.parametrize(("field", "value", "want"), [
    ("n", "10", "be an integer"), ("n", True, "be an integer"), ("n", 2.5, "be an integer"), ("n", -1, "be >= 0"),
    ("score_sum", "7", "be a number"), ("score_sum", math.nan, "be a finite number"),
    ("metric", 3, "be a string"), ("metric", "", "name a metric"), ("loss", "high", "be a number"),
])
def test_an_ill_typed_field_is_refused_naming_the_field(field, value, want):
    data = Evaluation("accuracy", 10, 7.0).to_dict() | {field: value}

    with pytest.raises(ValueError, match=f"hungary: field '{field}' must {want}"):
        Evaluation.from_dict(data, "hungary")


def test_a_personalised_score_without_its_epochs_is_refused():
    data = Evaluation("dice", 8, 6.0).to_dict() | {"dice_personalised": 0.9}

    with pytest.raises(ValueError, match="'dice_personalised' and 'personalise_epochs' go together"):
        Evaluation.from_dict(data)


def test_metrics_that_are_not_a_dict_are_refused():
    with pytest.raises(ValueError, match="expected a dict of metrics, got list"):
        Evaluation.from_dict([0.5])
