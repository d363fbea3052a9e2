"""The typed site result: one writer, one reader, and what each field may be."""

from __future__ import annotations

import numpy as np
import pytest

from consortium.protocol.site_result import FIELDS, ReleaseRule, SiteResult, Use, read_result


@pytest.fixture
def result():
    return SiteResult(n_samples=172, local_steps=22, fednova_a=22.0, train_loss=0.42, train_seconds=0.01,
                      val_metric="accuracy", val_n=89, val_score_sum=60.0, val_loss=0.5)


def test_what_the_writer_writes_the_reader_reads_back(result):
    read = read_result("hungary", result.to_meta())

    assert read == result
    assert read.missing == ()


def test_writer_leaves_out_fields_that_are_not_reported():
    assert SiteResult(n_samples=5).to_meta() == {"n_samples": 5}


def test_missing_n_samples_is_rejected_naming_site_and_field(result):
    meta = result.to_meta()
    del meta["n_samples"]

    with pytest.raises(ValueError, match="result from site-7 lacks meta field 'n_samples'"):
        read_result("site-7", meta)


@pytest.mark.parametrize("value, why", [("172", "not a finite number"), (None, "not a finite number"), (True, "not a finite number"),
                                        (1.9, "not a whole number"), (0, "positive"), (-5, "positive")])
def test_bad_n_samples_is_rejected(result, value, why):
    meta = result.to_meta() | {"n_samples": value}

    with pytest.raises(ValueError, match=why) as err:
        read_result("site-1", meta)

    assert "site-1" in str(err.value) and "n_samples" in str(err.value)


def test_numpy_counts_are_accepted_as_python_ints(result):
    read = read_result("site-1", result.to_meta() | {"n_samples": np.int64(172)})

    assert read.n_samples == 172 and type(read.n_samples) is int


@pytest.mark.parametrize("key", ["train_loss", "train_seconds", "val_metric", "val_n", "val_score_sum", "val_loss"])
def test_missing_reporting_field_is_read_and_named(result, key):
    meta = result.to_meta()
    del meta[key]

    read = read_result("site-1", meta)

    assert getattr(read, key) is None
    assert read.missing == (key,)
    assert read.n_samples == 172


def test_malformed_reporting_field_is_dropped_and_named(result):
    read = read_result("site-1", result.to_meta() | {"train_loss": float("nan")})

    assert read.train_loss is None and read.missing == ("train_loss",)


def test_malformed_combination_field_is_rejected(result):
    with pytest.raises(ValueError, match="result from site-1: meta field 'fednova_a' = 'x' is not a finite number"):
        read_result("site-1", result.to_meta() | {"fednova_a": "x"})


def test_fednova_fields_may_be_absent_for_fedavg(result):
    meta = result.to_meta()
    del meta["local_steps"], meta["fednova_a"]

    read = read_result("site-1", meta)

    assert (read.local_steps, read.fednova_a, read.missing) == (None, None, ())


def test_every_field_says_its_use_and_release():
    assert set(FIELDS) == {f for f in SiteResult.__dataclass_fields__ if f != "missing"}
    for spec in FIELDS.values():
        assert spec.use in Use and spec.release in ReleaseRule and spec.doc
        # a field the combination needs may be coarsened at most, never dropped
        assert not (spec.use == Use.COMBINE and spec.release == ReleaseRule.DROP)
    assert FIELDS["n_samples"].use == Use.COMBINE and FIELDS["train_loss"].release == ReleaseRule.DROP
