"""The aggregator's check of the metadata a site attaches to its training result."""

import numpy as np
import pytest

from consortium.flare.checked_aggregator import site_report
from consortium.protocol import ResultMeta


@pytest.fixture
def meta():
    return {
        ResultMeta.N_SAMPLES.value: 172,
        ResultMeta.TRAIN_LOSS.value: 0.42,
        ResultMeta.VAL_N.value: 89,
        ResultMeta.VAL_SCORE_SUM.value: 60,
        ResultMeta.LOCAL_STEPS.value: 22,
    }


def test_complete_meta_gives_the_site_report(meta):
    report = site_report("hungary", meta)

    assert report.site == "hungary"
    assert (report.n_samples, report.val_n, report.val_score_sum) == (172, 89, 60)
    assert report.train_loss == pytest.approx(0.42)


@pytest.mark.parametrize("key", [ResultMeta.N_SAMPLES, ResultMeta.TRAIN_LOSS, ResultMeta.VAL_N, ResultMeta.VAL_SCORE_SUM])
def test_missing_field_is_rejected_naming_field_and_site(meta, key):
    del meta[key.value]

    with pytest.raises(ValueError) as err:
        site_report("site-7", meta)

    assert key.value in str(err.value)
    assert "site-7" in str(err.value)


@pytest.mark.parametrize("value", ["172", None, [172]])
def test_non_number_is_rejected(meta, value):
    meta[ResultMeta.N_SAMPLES.value] = value

    with pytest.raises(ValueError, match="not a finite number"):
        site_report("site-1", meta)


def test_bool_is_rejected(meta):
    meta[ResultMeta.VAL_SCORE_SUM.value] = True

    with pytest.raises(ValueError, match=ResultMeta.VAL_SCORE_SUM.value):
        site_report("site-1", meta)


@pytest.mark.parametrize("n", [0, -5])
def test_non_positive_n_samples_is_rejected(meta, n):
    meta[ResultMeta.N_SAMPLES.value] = n

    with pytest.raises(ValueError, match="n_samples"):
        site_report("site-1", meta)


def test_integer_train_loss_is_accepted_as_float(meta):
    meta[ResultMeta.TRAIN_LOSS.value] = 1

    report = site_report("site-1", meta)

    assert isinstance(report.train_loss, float)
    assert report.train_loss == 1.0


def test_numpy_counts_are_accepted(meta):
    meta[ResultMeta.N_SAMPLES.value] = np.int64(172)

    assert site_report("site-1", meta).n_samples == 172


def test_non_finite_loss_is_rejected(meta):
    meta[ResultMeta.TRAIN_LOSS.value] = float("nan")

    with pytest.raises(ValueError, match="train_loss"):
        site_report("site-1", meta)


def test_fractional_count_is_rejected(meta):
    meta[ResultMeta.N_SAMPLES.value] = 1.9

    with pytest.raises(ValueError, match="not a whole number"):
        site_report("site-1", meta)


def test_metric_name_is_required():
    from consortium.flare.checked_aggregator import metric_name

    assert metric_name("site-1", {"val_metric": "dice"}) == "dice"
    with pytest.raises(ValueError, match="'val_metric' = None must name the metric"):
        metric_name("site-1", {})
