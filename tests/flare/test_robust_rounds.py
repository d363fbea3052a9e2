"""Quorum, server state and the fire-drill faults, at the level of the FLARE components and the
pure checks (the POC tests run them in real jobs)."""

from __future__ import annotations

import numpy as np
import pytest
import test_round_aggregator as base
from nvflare.apis.fl_constant import ReservedKey
from nvflare.apis.fl_context import FLContext
from nvflare.app_common.abstract.model import make_model_learnable
from nvflare.app_common.app_constant import AppConstants
from test_round_aggregator import result

from consortium.aggregation.checks import DEFAULT_CHECKS, NormBound, run_checks
from consortium.flare.aggregators.round import RoundAggregator
from consortium.flare.filters.fault_drill import FaultDrill
from consortium.flare.workflows.scatter import ScatterAndGather
from consortium.operations.drills import FAULTS, corrupt


@pytest.fixture
def ctx(tmp_path):
    """A server context at round 3 (as in test_round_aggregator)."""
    c = FLContext()
    c.set_prop(ReservedKey.ENGINE, base._Engine(tmp_path), private=True, sticky=False)
    c.set_prop(ReservedKey.RUN_NUM, "job1", private=True, sticky=False)
    c.set_prop(AppConstants.CURRENT_ROUND, 3, private=True, sticky=False)
    c.set_prop(AppConstants.GLOBAL_MODEL, make_model_learnable(base.GLOBAL, {}), private=True, sticky=False)
    (tmp_path / "job1").mkdir()
    return c


UPDATE = {"w": np.array([0.1, -0.2], dtype=np.float32)}
REFERENCE = {"w": np.zeros(2, dtype=np.float32)}


def test_quorum_shortfall_names_who_answered_and_why_it_is_not_enough(ctx):
    agg = RoundAggregator(min_accepted=3)
    assert agg.accept(result("cleveland", [0.1, 0.1]), ctx)
    assert not agg.accept(result("hungary", [np.nan, 0.1]), ctx)
    short = agg.quorum_shortfall(ctx)
    assert short.answered == {"cleveland", "hungary"}
    assert "1 result(s) accepted (cleveland), min_accepted is 3" in short.reason and "hungary" in short.reason
    assert agg.accept(result("switzerland", [0.1, 0.0]), ctx) and agg.accept(result("va-long-beach", [0.0, 0.1]), ctx)
    assert agg.quorum_shortfall(ctx) is None


@pytest.mark.parametrize("bad", [{"max_round_retries": -1}, {"max_round_retries": 1.5}, {"max_round_retries": True}])
def test_retries_must_be_a_count(bad):
    with pytest.raises(ValueError, match="max_round_retries"):
        ScatterAndGather(min_clients=3, train_timeout=60, **bad)


def test_a_retry_without_a_straggler_limit_is_refused():
    with pytest.raises(ValueError, match="needs train_timeout > 0"):
        ScatterAndGather(min_clients=3, max_round_retries=1, train_timeout=0)
    assert ScatterAndGather(min_clients=3, max_round_retries=1, train_timeout=60).max_round_retries == 1


def test_momentum_velocity_is_saved_and_restored(ctx):
    agg = RoundAggregator(algorithm="fednova", server_momentum=0.5, min_accepted=1)
    assert agg.server_state() == {}
    assert agg.accept(result("cleveland", [0.2, 0.4]), ctx)
    agg.aggregate(ctx)
    state = agg.server_state()
    assert set(state) == {"velocity/w"} and np.abs(state["velocity/w"]).sum() > 0

    fresh = RoundAggregator(algorithm="fednova", server_momentum=0.5, min_accepted=1)
    fresh.restore_server_state(state)
    np.testing.assert_array_equal(fresh.server_state()["velocity/w"], state["velocity/w"])
    with pytest.raises(ValueError, match="no server_momentum"):
        RoundAggregator(algorithm="fednova").restore_server_state(state)


def test_resume_arguments_go_together():
    with pytest.raises(ValueError, match="go together"):
        RoundAggregator(resume_from="resume/v0003.npz")


@pytest.mark.parametrize("fault, reason", [("nan", "non-finite"), ("shape", "shape"), ("huge", "norm")])
def test_every_drill_fault_is_caught_by_the_servers_checks(fault, reason):
    bad = corrupt(UPDATE, fault)
    run_checks("hungary", UPDATE, REFERENCE, DEFAULT_CHECKS + (NormBound(10.0),))  # the clean update passes
    with pytest.raises(ValueError, match=reason):
        run_checks("hungary", bad, REFERENCE, DEFAULT_CHECKS + (NormBound(10.0),))
    np.testing.assert_array_equal(UPDATE["w"], np.array([0.1, -0.2], dtype=np.float32))  # corrupt() leaves its input alone


def test_sign_flip_is_the_poisoning_of_the_benchmark():
    np.testing.assert_allclose(corrupt(UPDATE, "sign_flip_x50")["w"], [-5.0, 10.0])


@pytest.mark.parametrize("faults", [{}, {"hungary": []}, {"hungary": ["melt"]}, {"hungary": "nan"}])
def test_a_drill_with_unknown_faults_is_refused(faults):
    with pytest.raises(ValueError, match="FaultDrill"):
        FaultDrill(faults)
    assert set(FAULTS) == {"none", "nan", "shape", "huge", "sign_flip_x50"}
