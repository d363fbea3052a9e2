"""The typed round record: one writer, one reader, the progress file's bytes as they always were,
and a reader that fails closed naming the field."""

from __future__ import annotations

import json
import math

import pytest

from consortium.protocol.round_record import RoundRecord, RoundSummary

# a line of progress.jsonl as the FLARE aggregator wrote it before the record was typed (POC monitoring job, round 0)
WRITTEN_BEFORE = (
    '{"round": 0, "sites": 4, "mean_train_loss": 0.600246208461536, "pooled_score": 0.5551181102362205, "metric": "'
    'accuracy", "contributors": ["cleveland", "hungary", "switzerland", "va-long-beach"], "rejected": {}, "incomple'
    'te": {}, "max_train_seconds": 1.6829029950004042, "local_steps": {"cleveland": 25, "hungary": 22, "switzerland'
    '": 4, "va-long-beach": 11}, "finished_at": 1796693507.1443212, "site_norms": {"cleveland": 0.5568493507179084,'
    ' "hungary": 25.087012474943137, "switzerland": 0.23688396845005147, "va-long-beach": 0.30712394917206587}, "si'
    'te_cosines": {}, "alerts": {"hungary": "update norm 25.1, 58x the round\'s median (robust z 6.5 on log-norms)"}'
    ', "epsilon": {}, "withheld": {}, "started_at": 1796693505.280684, "site_seconds": {"cleveland": 1.772624969482'
    '4219, "hungary": 1.8109729290008545, "switzerland": 1.7397301197052002, "va-long-beach": 1.7253003120422363}, '
    '"site_train_loss": {"cleveland": 0.6327582466602325, "hungary": 0.5497971312566237, "switzerland": 0.502126261'
    '5919113, "va-long-beach": 0.660845550623807}, "site_update_bytes": {"cleveland": 56, "hungary": 56, "switzerla'
    'nd": 56, "va-long-beach": 56}, "site_he_seconds": {}, "combine_seconds": 0.016684047999660834, "load_seconds":'
    ' 0.000510215999383945, "quarantined": {}, "incidents": []}'
)


def test_a_line_written_before_the_type_reads_and_writes_back_byte_for_byte():
    assert RoundRecord.from_json_line(WRITTEN_BEFORE).to_json_line() == WRITTEN_BEFORE


def test_what_the_writer_writes_the_reader_reads_back():
    record = RoundRecord(round=2, sites=3, mean_train_loss=0.4, pooled_score=0.8, contributors=["a", "b"],
                         rejected={"c": "update norm 1e+04 exceeds the bound 10"}, local_steps={"a": 5, "b": 7},
                         site_update_bytes={"a": 56, "b": 56}, load_seconds=0, incidents=["freeze (before round 2)"])

    assert RoundRecord.from_json_line(record.to_json_line()) == record
    assert RoundRecord.from_dict(record.to_dict()) == record


def test_the_record_is_the_summary_plus_the_flare_side_in_that_order():
    keys = list(RoundRecord(round=0, sites=1, mean_train_loss=0.5, pooled_score=0.5).to_dict())

    assert keys[:len(RoundSummary.__dataclass_fields__)] == list(RoundSummary.__dataclass_fields__)
    assert keys[-9:] == ["started_at", "site_seconds", "site_train_loss", "site_update_bytes", "site_he_seconds",
                         "combine_seconds", "load_seconds", "quarantined", "incidents"]


def test_a_round_without_a_reported_loss_keeps_its_nan():
    line = RoundRecord(round=0, sites=1, mean_train_loss=math.nan, pooled_score=0.5).to_json_line()

    assert math.isnan(RoundRecord.from_json_line(line).mean_train_loss)


@pytest.mark.parametrize("field", ["round", "sites", "mean_train_loss", "pooled_score"])
def test_a_missing_field_is_refused_naming_the_field(field):
    data = json.loads(WRITTEN_BEFORE)
    del data[field]

    with pytest.raises(ValueError, match=f"progress.jsonl: line 4: field '{field}' missing"):
        RoundRecord.from_dict(data, "progress.jsonl: line 4")


@pytest.mark.parametrize(("field", "value", "want"), [
    ("round", "0", "field 'round' must be an integer"),
    ("round", True, "field 'round' must be an integer"),
    ("pooled_score", None, "field 'pooled_score' must be a number"),
    ("metric", 1, "field 'metric' must be a string"),
    ("contributors", "cleveland", "field 'contributors' must be a list"),
    ("contributors", ["cleveland", 3], "field 'contributors' at \\[1\\] must be a string"),
    ("site_seconds", {"cleveland": "fast"}, "field 'site_seconds' at 'cleveland' must be a number"),
    ("site_update_bytes", {"cleveland": 5.5}, "field 'site_update_bytes' at 'cleveland' must be an integer"),
    ("incomplete", {"cleveland": "val_n"}, "field 'incomplete' at 'cleveland' must be a list"),
    ("rejected", [], "field 'rejected' must be an object keyed by site"),
    ("combine_seconds", "0.1", "field 'combine_seconds' must be a number"),
])
def test_an_ill_typed_field_is_refused_naming_the_field(field, value, want):
    data = json.loads(WRITTEN_BEFORE) | {field: value}

    with pytest.raises(ValueError, match=want):
        RoundRecord.from_dict(data)


def test_an_unknown_field_is_refused():
    with pytest.raises(ValueError, match="round record: unknown field 'frozen'"):
        RoundRecord.from_dict(json.loads(WRITTEN_BEFORE) | {"frozen": True})


@pytest.mark.parametrize("text", ['{"round": 1', "[1, 2]"])
def test_a_line_that_is_no_json_object_is_refused(text):
    with pytest.raises(ValueError, match="line 7: (not valid JSON|expected a JSON object, got list)"):
        RoundRecord.from_json_line(text, "line 7")
