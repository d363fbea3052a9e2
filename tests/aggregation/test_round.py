"""A round composed from checks, weighting, combine rule and server step."""

from __future__ import annotations

import numpy as np
import pytest

from consortium.aggregation.checks import DEFAULT_CHECKS, NormBound
from consortium.aggregation.round import RoundAggregation
from consortium.aggregation.server_step import ServerMomentum
from consortium.aggregation.weighting import FedAvgWeighting, FedNovaWeighting
from consortium.protocol.site_result import SiteResult

MODEL = {"w": np.zeros(2, dtype=np.float32)}


def u(*values, dtype=np.float32):
    return {"w": np.array(values, dtype=dtype)}


def full(n=10, steps=5, a=5.0, metric="accuracy"):
    return SiteResult(n_samples=n, local_steps=steps, fednova_a=a, train_loss=0.5, val_metric=metric, val_n=4,
                      val_score_sum=3.0)


def started(weighting=None, **kwargs):
    rnd = RoundAggregation(weighting or FedAvgWeighting(), **kwargs)
    rnd.start(3, MODEL)
    return rnd


def test_accepted_results_are_combined_and_named_in_the_record():
    rnd = started()
    assert rnd.offer("a", u(1.0, 0.0), full(n=10)) is None
    assert rnd.offer("b", u(0.0, 4.0), full(n=30)) is None

    update, record = rnd.close()

    np.testing.assert_allclose(update["w"], [0.25, 3.0])
    assert record.contributors == ["a", "b"] and record.rejected == {} and record.round == 3


def test_a_result_missing_a_reporting_field_is_combined_and_reported_incomplete():
    rnd = started()
    rnd.offer("a", u(1.0, 0.0), full(n=10))
    assert rnd.offer("b", u(0.0, 4.0), SiteResult(n_samples=30, missing=("train_loss", "val_n", "val_score_sum"))) is None

    update, record = rnd.close()

    np.testing.assert_allclose(update["w"], [0.25, 3.0])  # b still weighs 30
    assert record.incomplete == {"b": ["train_loss", "val_n", "val_score_sum"]}
    assert record.mean_train_loss == pytest.approx(0.5)  # from a alone


def test_an_integer_update_is_rejected_and_does_not_change_the_aggregate():
    rnd = started()
    rnd.offer("a", u(0.5, 0.25), full())
    reason = rnd.offer("b", u(1, 2, dtype=np.int64), full())

    update, record = rnd.close()

    assert "tensor 'w' has dtype int64" in reason and "b" in reason
    assert update["w"].dtype == np.float32
    np.testing.assert_array_equal(update["w"], [0.5, 0.25])
    assert record.rejected == {"b": reason}


def test_fednova_rejects_a_result_without_normaliser_that_fedavg_combines():
    lacking = SiteResult(n_samples=10, local_steps=5)

    assert "fednova_a" in started(FedNovaWeighting()).offer("a", u(1.0, 1.0), lacking)
    assert started(FedAvgWeighting()).offer("a", u(1.0, 1.0), lacking) is None


def test_second_result_of_a_site_is_discarded():
    rnd = started()
    rnd.offer("a", u(1.0, 1.0), full())

    assert "second result from a" in rnd.offer("a", u(9.0, 9.0), full())
    np.testing.assert_array_equal(rnd.close()[0]["w"], [1.0, 1.0])


def test_a_site_scoring_another_metric_is_rejected():
    rnd = started()
    rnd.offer("a", u(1.0, 1.0), full(metric="accuracy"))

    assert "reports 'dice', other sites ['accuracy']" in rnd.offer("b", u(1.0, 1.0), full(metric="dice"))


def test_norm_bound_joins_the_checks():
    rnd = started(checks=DEFAULT_CHECKS + (NormBound(1.0),))

    assert "exceeds the bound" in rnd.offer("a", u(3.0, 4.0), full())
    assert rnd.offer("b", u(0.3, 0.4), full()) is None


def test_too_few_accepted_fails_the_round_naming_the_rejections():
    rnd = started(min_accepted=2)
    rnd.offer("a", u(1.0, 1.0), full())
    rnd.offer("b", u(np.nan, 1.0), full())

    with pytest.raises(RuntimeError, match=r"need min_accepted=2 \(b: update from b: tensor 'w' has 1 non-finite"):
        rnd.close()


def test_each_round_starts_empty():
    rnd = started()
    rnd.offer("a", u(1.0, 1.0), full())
    rnd.close()
    rnd.start(4, MODEL)
    rnd.offer("a", u(3.0, 3.0), full())

    update, record = rnd.close()

    np.testing.assert_array_equal(update["w"], [3.0, 3.0])
    assert record.round == 4


def test_server_momentum_carries_over_rounds():
    rnd = started(FedNovaWeighting(), step=ServerMomentum(0.5))
    rnd.offer("a", u(2.0, 0.0), full(steps=2, a=2.0))
    first = rnd.close()[0]["w"]
    rnd.start(4, MODEL)
    rnd.offer("a", u(0.0, 2.0), full(steps=2, a=2.0))
    second = rnd.close()[0]["w"]

    np.testing.assert_allclose(first, [2.0, 0.0])
    np.testing.assert_allclose(second, [1.0, 2.0])  # 0.5 * first + this round's update


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_min_accepted_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="min_accepted"):
        RoundAggregation(FedAvgWeighting(), min_accepted=bad)
