"""The round record mapped onto Prometheus series: counts, latency, plateau, and the metadata guard."""

from __future__ import annotations

import math

import pytest

from consortium.telemetry.series import SERIES, PlateauTracker, Sample, check_metadata, round_samples

RECORD = {"round": 4, "sites": 2, "mean_train_loss": 0.5, "pooled_score": 0.8, "metric": "accuracy",
          "contributors": ["a", "b"], "rejected": {"c": "c quarantined (...)"}, "site_norms": {"a": 1.0, "b": 50.0},
          "site_cosines": {"a": 0.9, "b": -0.9}, "alerts": {"b": "update norm 50"}, "epsilon": {},
          "max_train_seconds": 0.4, "finished_at": 110.0, "started_at": 108.5, "site_seconds": {"a": 0.7, "b": 1.2, "c": 0.2},
          "site_train_loss": {"a": 0.4, "b": 0.6}, "site_update_bytes": {"a": 56, "b": 56}, "quarantined": {"c": "..."}}


def by_key(samples):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in samples}


def test_participation_counts_contributed_rejected_and_absent_sites():
    samples = round_samples(RECORD, "j", ["a", "b", "c", "d"])
    got = by_key(samples)

    assert got[("consortium_participation_ratio", (("fl_job", "j"),))] == 0.5
    assert got[("consortium_sites_expected", (("fl_job", "j"),))] == 4
    outcomes = {s.labels["site"]: s.labels["outcome"] for s in samples if s.name == "consortium_site_rounds_total"}
    assert outcomes == {"a": "contributed", "b": "contributed", "c": "rejected", "d": "absent"}
    assert got[("consortium_site_quarantined", (("fl_job", "j"), ("site", "c")))] == 1


def test_latency_is_the_record_s_finish_minus_its_start_or_the_previous_finish():
    with_start = by_key(round_samples(RECORD, "j", ["a", "b"]))
    without = by_key(round_samples({**RECORD, "started_at": None}, "j", ["a", "b"], previous_finished_at=100.0))

    assert with_start[("consortium_round_duration_seconds", (("fl_job", "j"),))] == pytest.approx(1.5)
    assert without[("consortium_round_last_duration_seconds", (("fl_job", "j"),))] == pytest.approx(10.0)


def test_norms_cosines_alerts_and_bytes_come_from_the_record_unchanged():
    got = by_key(round_samples(RECORD, "j", ["a", "b"]))

    assert got[("consortium_site_update_norm", (("fl_job", "j"), ("site", "b")))] == 50.0
    assert got[("consortium_site_update_cosine", (("fl_job", "j"), ("site", "b")))] == -0.9
    assert got[("consortium_site_alert", (("fl_job", "j"), ("site", "b")))] == 1
    assert got[("consortium_site_alert", (("fl_job", "j"), ("site", "a")))] == 0
    assert got[("consortium_round_update_bytes", (("fl_job", "j"),))] == 112
    assert got[("consortium_dp_enabled", (("fl_job", "j"),))] == 0


def test_epsilon_is_exported_per_site_when_dp_is_on():
    got = by_key(round_samples({**RECORD, "epsilon": {"a": 1.5, "b": 2.0}}, "j", ["a", "b"]))

    assert got[("consortium_site_epsilon", (("fl_job", "j"), ("site", "a")))] == 1.5
    assert got[("consortium_dp_enabled", (("fl_job", "j"),))] == 1


def test_he_time_is_exported_per_site_and_at_the_server_when_he_is_on():
    plain = by_key(round_samples({**RECORD, "combine_seconds": 0.01, "load_seconds": 0.0}, "j", ["a", "b"]))
    he = by_key(round_samples({**RECORD, "site_he_seconds": {"a": 0.8, "b": 1.1}, "combine_seconds": 0.2,
                               "load_seconds": 0.3}, "j", ["a", "b"]))

    assert plain[("consortium_he_enabled", (("fl_job", "j"),))] == 0
    assert not any(k[0] == "consortium_site_he_seconds" for k in plain)
    assert plain[("consortium_round_server_seconds", (("fl_job", "j"),))] == 0.01
    assert he[("consortium_he_enabled", (("fl_job", "j"),))] == 1
    assert he[("consortium_site_he_seconds", (("fl_job", "j"), ("site", "b")))] == 1.1
    assert he[("consortium_round_server_seconds", (("fl_job", "j"),))] == 0.5


def test_a_missing_loss_exports_no_loss_sample():
    names = {s.name for s in round_samples({**RECORD, "mean_train_loss": math.nan}, "j", ["a"])}
    assert "consortium_train_loss" not in names


def test_plateau_counts_rounds_since_the_loss_last_improved_by_more_than_the_tolerance():
    t = PlateauTracker(rel_tol=0.01)
    counts = [t.update(x) for x in (1.0, 0.9, 0.895, 0.894, math.nan, 0.5, 0.5)]
    assert counts == [0, 0, 1, 2, 2, 0, 1]  # 0.895 is within 1 % of 0.9


@pytest.mark.parametrize("sample", [
    Sample("consortium_weights", {"fl_job": "j"}, 1.0),  # not a consortium series
    Sample("consortium_site_update_norm", {"fl_job": "j", "site": "a", "layer": "w"}, 1.0),  # extra label
    Sample("consortium_site_update_cosine", {"fl_job": "j", "site": "a"}, 1.5),  # outside [-1, 1]
    Sample("consortium_participation_ratio", {"fl_job": "j"}, math.nan),
])
def test_the_guard_refuses_anything_but_declared_metadata(sample):
    with pytest.raises(ValueError, match="telemetry"):
        check_metadata([sample])


def test_every_declared_series_has_job_first_and_only_metadata_labels():
    for spec in SERIES.values():
        assert spec.labels[0] == "fl_job" and set(spec.labels) <= {"fl_job", "site", "outcome", "metric"}, spec
