"""The FedAvg and FedNova aggregators as ScatterAndGather drives them: accept() per site result,
aggregate() per round, with real FLARE Shareables and contexts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from nvflare.apis.dxo import DXO, DataKind, from_shareable
from nvflare.apis.fl_constant import ReservedKey
from nvflare.apis.fl_context import FLContext
from nvflare.apis.workspace import Workspace
from nvflare.app_common.abstract.model import make_model_learnable
from nvflare.app_common.app_constant import AppConstants

from consortium.aggregation.fednova import fednova_update
from consortium.flare.fednova_aggregator import FedNovaAggregator
from consortium.flare.weighted_mean_aggregator import WeightedMeanAggregator

GLOBAL = {"w": np.zeros(2, dtype=np.float32)}


class _Engine:
    """What the aggregator asks of FLARE's engine: the workspace to write progress into."""

    def __init__(self, root):
        (root / "startup").mkdir(exist_ok=True)
        (root / "local").mkdir(exist_ok=True)
        self.workspace = Workspace(str(root), "server")

    def get_workspace(self):
        return self.workspace

    def fire_event(self, event_type, fl_ctx):  # log_error() announces errors on FLARE's event bus
        pass


@pytest.fixture
def fl_ctx(tmp_path):
    ctx = FLContext()
    ctx.set_prop(ReservedKey.ENGINE, _Engine(tmp_path), private=True, sticky=False)
    ctx.set_prop(ReservedKey.RUN_NUM, "job1", private=True, sticky=False)
    ctx.set_prop(AppConstants.CURRENT_ROUND, 3, private=True, sticky=False)
    ctx.set_prop(AppConstants.GLOBAL_MODEL, make_model_learnable(GLOBAL, {}), private=True, sticky=False)
    (tmp_path / "job1").mkdir()
    return ctx


def result(site, update, n=10, steps=5, a=5.0, **meta):
    m = {"n_samples": n, "train_loss": 0.5, "val_n": 4, "val_score_sum": 3.0, "val_metric": "accuracy",
         "local_steps": steps, "fednova_a": a} | meta
    s = DXO(data_kind=DataKind.WEIGHT_DIFF, data={"w": np.asarray(update, dtype=np.float32)}, meta=m).to_shareable()
    s.set_peer_props({ReservedKey.IDENTITY_NAME: site})
    s.add_cookie(AppConstants.CONTRIBUTION_ROUND, 3)
    return s


def test_fedavg_weights_by_sample_count_and_writes_progress(fl_ctx, tmp_path):
    agg = WeightedMeanAggregator()
    assert agg.accept(result("a", [1.0, 0.0], n=10), fl_ctx)
    assert agg.accept(result("b", [0.0, 4.0], n=30), fl_ctx)
    out = from_shareable(agg.aggregate(fl_ctx))
    np.testing.assert_allclose(out.data["w"], [0.25, 3.0])
    line = json.loads((tmp_path / "job1" / "progress.jsonl").read_text().splitlines()[-1])
    assert (line["round"], line["sites"], line["pooled_score"]) == (3, 2, 0.75)


def test_fednova_adapter_matches_the_pure_update(fl_ctx):
    agg = FedNovaAggregator()
    assert agg.accept(result("a", [2.0, 2.0], n=10, steps=2, a=2.0), fl_ctx)
    assert agg.accept(result("b", [9.0, 0.0], n=30, steps=9, a=9.0), fl_ctx)
    out = from_shareable(agg.aggregate(fl_ctx)).data["w"]
    expected = fednova_update([{"w": np.array([2.0, 2.0])}, {"w": np.array([9.0, 0.0])}], [10, 30], [2.0, 9.0], [2, 9])
    np.testing.assert_allclose(out, expected["w"], rtol=1e-6)
    # and it differs from FedAvg on unequal local work
    assert not np.allclose(out, 0.25 * np.array([2.0, 2.0]) + 0.75 * np.array([9.0, 0.0]))


@pytest.mark.parametrize(
    "bad",
    [
        result("x", [np.nan, 0.0]),  # non-finite values
        result("x", [1.0, 2.0, 3.0]),  # wrong layout for the global model
        result("x", [1.0, 0.0], val_metric="dice"),  # another metric than the other sites
    ],
)
def test_bad_update_is_rejected_and_the_others_still_aggregate(fl_ctx, bad):
    agg = WeightedMeanAggregator()
    assert agg.accept(result("a", [1.0, 1.0]), fl_ctx)
    assert not agg.accept(bad, fl_ctx)
    assert len(agg.accepted) == 1


def test_fednova_rejects_a_result_without_normaliser(fl_ctx):
    s = result("a", [1.0, 1.0])
    dxo = from_shareable(s)
    del dxo.meta["fednova_a"]
    s2 = dxo.to_shareable()
    s2.set_peer_props({ReservedKey.IDENTITY_NAME: "a"})
    assert not FedNovaAggregator().accept(s2, fl_ctx)
    assert WeightedMeanAggregator().accept(s2, fl_ctx)  # FedAvg does not need it


def test_fewer_accepted_sites_than_required_fails_the_round(fl_ctx):
    agg = WeightedMeanAggregator(min_accepted=2)
    assert agg.accept(result("a", [1.0, 1.0]), fl_ctx)
    with pytest.raises(RuntimeError, match="need min_accepted=2"):
        agg.aggregate(fl_ctx)


def test_late_result_of_an_earlier_round_is_discarded(fl_ctx):
    s = result("a", [1.0, 1.0])
    s.add_cookie(AppConstants.CONTRIBUTION_ROUND, 2)
    assert not WeightedMeanAggregator().accept(s, fl_ctx)


def test_fednova_server_momentum_carries_over_rounds(fl_ctx):
    agg = FedNovaAggregator(server_momentum=0.5)
    agg.accept(result("a", [2.0, 0.0], steps=2, a=2.0), fl_ctx)
    first = from_shareable(agg.aggregate(fl_ctx)).data["w"]
    agg.accept(result("a", [0.0, 2.0], steps=2, a=2.0), fl_ctx)
    second = from_shareable(agg.aggregate(fl_ctx)).data["w"]
    np.testing.assert_allclose(first, [2.0, 0.0])
    np.testing.assert_allclose(second, [1.0, 2.0])  # 0.5 * first + this round's update
