"""Robust combine rules and outlier alerts, with numbers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from consortium.aggregation.alerts import alerts, robust_z
from consortium.aggregation.robust import coordinate_median, krum, krum_index, make_robust_rule, norm_clipped_mean, trimmed_mean
from consortium.aggregation.round import RoundAggregation
from consortium.aggregation.weighting import FedAvgWeighting
from consortium.flare.aggregators.round import RoundAggregator
from consortium.protocol.site_result import SiteResult


def u(*values):
    return {"w": np.array(values, dtype=np.float32)}


def test_coordinate_median_by_hand():
    np.testing.assert_array_equal(coordinate_median([u(1, 10), u(2, -5), u(100, 0)])["w"], [2, 0])


def test_trimmed_mean_drops_the_extremes_per_coordinate():
    # per coordinate sorted: [1,2,3,100] -> mean(2,3) = 2.5; [-50,0,1,2] -> mean(0,1) = 0.5
    out = trimmed_mean([u(1, 2), u(2, 0), u(3, 1), u(100, -50)], trim=1)
    np.testing.assert_allclose(out["w"], [2.5, 0.5])
    with pytest.raises(ValueError, match="more than 2\\*trim"):
        trimmed_mean([u(1), u(2)], trim=1)


def test_krum_selects_the_update_closest_to_its_neighbours():
    updates = [u(0, 0), u(0.1, 0), u(0, 0.1), u(0.1, 0.1), u(50, -50)]
    assert krum_index(updates, f=1) in (0, 1, 2, 3)
    np.testing.assert_array_equal(krum(updates, f=1)["w"], updates[krum_index(updates, f=1)]["w"])


@pytest.mark.parametrize("n, f", [(4, 1), (6, 2)])
def test_krum_is_refused_below_2f_plus_3_sites(n, f):
    with pytest.raises(ValueError, match=f"needs at least 2f\\+3 = {2 * f + 3} sites, got {n}"):
        make_robust_rule("krum", krum_f=f, sites=n)


def test_norm_clipping_bounds_each_update_by_the_median_norm():
    # norms 1, 2, 100: each clipped to 2 -> 0.5*[1,0] + 0.5*[0,2] would be the unclipped honest mean
    out = norm_clipped_mean([u(1, 0), u(0, 2), u(100, 0)], [1 / 3, 1 / 3, 1 / 3])
    np.testing.assert_allclose(out["w"], [(1 + 2) / 3, 2 / 3], rtol=1e-6)


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="rule must be 'mean' or one of"):
        make_robust_rule("geomedian")


def test_a_median_round_is_not_moved_by_one_poisoner():
    rnd = RoundAggregation(FedAvgWeighting(), rule=make_robust_rule("median"))
    rnd.start(0, {"w": np.zeros(2, dtype=np.float32)})
    for site, update in {"a": u(1, 1), "b": u(1.2, 0.8), "c": u(0.9, 1.1), "evil": u(-50, -50)}.items():
        assert rnd.offer(site, update, SiteResult(n_samples=10)) is None

    out, record = rnd.close()

    np.testing.assert_allclose(out["w"], [0.95, 0.9], rtol=1e-6)  # medians of (1, 1.2, 0.9, -50) and (1, 0.8, 1.1, -50)
    assert record.contributors == ["a", "b", "c", "evil"]


def test_robust_z_by_hand():
    # median 2.5, |x - 2.5| = [1.5, 0.5, 0.5, 97.5] -> MAD 1 -> z = (x - 2.5) / 1.4826
    z = robust_z({"a": 1.0, "b": 2.0, "c": 3.0, "d": 100.0})
    assert z["b"] == pytest.approx(-0.5 / 1.4826)
    assert z["d"] == pytest.approx(97.5 / 1.4826)


def test_a_fifty_times_larger_update_alerts_and_honest_spread_does_not():
    norms = {"cleveland": 1.0, "hungary": 0.7, "switzerland": 0.3, "va": 50.0}  # 3x spread of honest local work
    flagged = alerts(norms, {}, threshold=3.5)
    assert list(flagged) == ["va"] and "update norm 50" in flagged["va"]


def test_an_update_pointing_away_from_the_consortium_alerts():
    flagged = alerts({}, {"a": 0.8, "b": 0.7, "c": 0.75, "evil": -0.9}, threshold=3.5)
    assert list(flagged) == ["evil"] and "cosine" in flagged["evil"]


def test_a_twice_larger_honest_update_does_not_alert_even_with_a_tiny_spread():
    # three nearly equal norms make the MAD tiny: z is huge, but 2x the median is not an outlier
    assert alerts({"a": 0.108, "b": 0.108, "c": 0.111, "small_site": 0.199}, {}, threshold=3.5) == {}
    assert alerts({}, {"a": 0.41, "b": 0.32, "c": 0.30, "d": -0.22}, threshold=3.5) == {}


def test_the_round_record_carries_norms_directions_and_alerts():
    rnd = RoundAggregation(FedAvgWeighting())
    for r, evil in enumerate((u(1, 1), u(-60, -60))):
        rnd.start(r, {"w": np.zeros(2, dtype=np.float32)})
        for site, update in {"a": u(1, 1), "b": u(1.1, 0.9), "c": u(0.9, 1.0), "evil": evil}.items():
            rnd.offer(site, update, SiteResult(n_samples=10))
        _, record = rnd.close()

    assert set(record.site_norms) == {"a", "b", "c", "evil"} and set(record.site_cosines) == set(record.site_norms)
    assert list(record.alerts) == ["evil"] and "ALERT: evil" in record.line()


def test_the_aggregator_refuses_krum_for_a_consortium_too_small():
    with pytest.raises(ValueError, match="2f\\+3"):
        RoundAggregator(rule="krum", krum_f=1, sites=4)


def test_an_alerted_site_can_be_left_out_of_its_round():
    rnd = RoundAggregation(FedAvgWeighting(), rule=make_robust_rule("held_mean"), exclude_alerted=True)
    rnd.start(0, {"w": np.zeros(2, dtype=np.float32)})
    for site, update in {"a": u(1, 1), "b": u(1.1, 0.9), "c": u(0.9, 1.1), "evil": u(-60, -60)}.items():
        rnd.offer(site, update, SiteResult(n_samples=10))

    out, record = rnd.close()

    np.testing.assert_allclose(out["w"], [1.0, 1.0], rtol=1e-6)  # the mean of a, b, c
    assert record.contributors == ["a", "b", "c"] and record.rejected["evil"].startswith("excluded this round by its alert")


def test_exclusion_needs_a_rule_that_holds_the_updates():
    with pytest.raises(ValueError, match="exclude_alerted needs"):
        RoundAggregation(FedAvgWeighting(), exclude_alerted=True)


def test_fednova_refuses_rules_that_ignore_its_normalisers():
    with pytest.raises(ValueError, match="ignores FedNova's normalisers"):
        RoundAggregator(algorithm="fednova", rule="median")
    RoundAggregator(algorithm="fednova", rule="norm_clip")
