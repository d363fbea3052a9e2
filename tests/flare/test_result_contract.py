"""The seam between a site and the server, without FLARE processes: what an executor's training
task writes, the aggregator's reader accepts; and an executor refuses settings that name a site
that is not in the job."""

from __future__ import annotations

import numpy as np
import pytest
from nvflare.apis.dxo import DXO, DataKind, from_shareable
from nvflare.apis.event_type import EventType
from nvflare.apis.fl_constant import ReservedKey, ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.signal import Signal
from nvflare.app_common.abstract.model import make_model_learnable
from nvflare.app_common.app_constant import AppConstants

from consortium.data.heart_disease import load_centre
from consortium.data.standardisation import local_moments, pooled_standardiser
from consortium.flare.aggregators.round import RoundAggregator
from consortium.flare.executors.tabular import TabularExecutor
from consortium.flare.result_io import read_shareable
from consortium.learning.loop import get_weights
from consortium.protocol.site_result import FIELDS, Use

SITES = ["cleveland", "hungary", "switzerland", "va-long-beach"]


class _Client:
    def __init__(self, name):
        self.name = name


class _Engine:
    """A client engine as far as the executor uses it: the job's clients and an event bus."""

    def __init__(self, clients):
        self.clients = [_Client(c) for c in clients]
        self.events = []

    def get_clients(self):
        return self.clients

    def fire_event(self, event_type, fl_ctx):
        self.events.append(event_type)


def site_ctx(site, clients=SITES):
    ctx = FLContext()
    ctx.set_prop(ReservedKey.IDENTITY_NAME, site, private=False, sticky=False)
    ctx.set_prop(ReservedKey.ENGINE, _Engine(clients), private=True, sticky=False)
    return ctx


def standardised(executor, ctx):
    stats = pooled_standardiser([local_moments(load_centre(c).x_train) for c in SITES])
    reply = executor.execute("set_standardisation", DXO(DataKind.STATISTICS, stats.to_dict()).to_shareable(), ctx, Signal())
    assert reply.get_return_code(ReturnCode.OK) == ReturnCode.OK


def train_task(executor, round_number=0):
    task = DXO(DataKind.WEIGHTS, get_weights(executor.model)).to_shareable()
    task.set_header(AppConstants.CURRENT_ROUND, round_number)
    return task


@pytest.mark.parametrize("fedprox_mu", [None, 0.1])
def test_what_an_executor_writes_the_aggregator_reads(fedprox_mu):
    executor = TabularExecutor(model_args={"in_features": 13}, site_epochs={"hungary": 2}, fedprox_mu=fedprox_mu)
    ctx = site_ctx("hungary")
    executor.handle_event(EventType.START_RUN, ctx)
    standardised(executor, ctx)
    global_weights = get_weights(executor.model)

    reply = executor.execute("train", train_task(executor), ctx, Signal())
    reply.set_peer_props({ReservedKey.IDENTITY_NAME: "hungary"})
    received = read_shareable(reply)

    r = received.result
    assert r.missing == ()  # every field of the contract is written
    assert set(r.to_meta()) == {k for k, spec in FIELDS.items() if spec.use != Use.OPTIONAL}
    assert r.n_samples == 172 and r.val_n == 89 and r.val_metric == "accuracy"
    assert r.local_steps == 2 * 22  # hungary's 2 epochs x ceil(172 / 8) batches
    assert r.fednova_a == pytest.approx(r.local_steps if fedprox_mu is None else (1 - (1 - 0.05 * 0.1) ** 44) / (0.05 * 0.1))
    assert set(received.update) == set(global_weights)

    server_ctx = FLContext()
    server_ctx.set_prop(AppConstants.CURRENT_ROUND, 0, private=True, sticky=False)
    server_ctx.set_prop(AppConstants.GLOBAL_MODEL, make_model_learnable(global_weights, {}), private=True, sticky=False)
    for algorithm in ("fedavg", "fednova"):
        assert RoundAggregator(algorithm=algorithm).accept(reply, server_ctx), algorithm


def test_site_epochs_naming_a_site_outside_the_job_stops_the_executor():
    executor = TabularExecutor(site_epochs={"clevland": 5})
    ctx = site_ctx("hungary")

    executor.handle_event(EventType.START_RUN, ctx)
    reply = executor.execute("train", train_task(executor), ctx, Signal())

    assert "clevland" in executor.config_error
    assert EventType.FATAL_SYSTEM_ERROR in ctx.get_engine().events
    assert reply.get_return_code() == ReturnCode.EXECUTION_EXCEPTION


@pytest.mark.parametrize("args, match", [({"site_epochs": {"hungary": 0}}, r"site_epochs\['hungary'\]: epochs"),
                                         ({"epoch": 3}, r"unknown local-training argument\(s\) \['epoch'\]"),
                                         ({"fedprox_mu": -1}, "fedprox_mu"), ({"lr": 0}, "lr")])
def test_bad_training_arguments_are_refused_when_the_job_is_built(args, match):
    with pytest.raises(ValueError, match=match):
        TabularExecutor(**args)


def test_the_update_is_what_training_moved():
    executor = TabularExecutor()
    ctx = site_ctx("cleveland")
    standardised(executor, ctx)
    before = get_weights(executor.model)

    reply = executor.execute("train", train_task(executor), ctx, Signal())

    after = executor.local_weights
    for k, v in from_shareable(reply).data.items():
        np.testing.assert_array_equal(v, after[k] - before[k])
        assert np.any(v != 0)
