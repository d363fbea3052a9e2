"""The one FLARE aggregator as ScatterAndGather drives it (accept() per site result, aggregate()
per round) with real Shareables and contexts, and the listener that writes the round record."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from nvflare.apis.dxo import DXO, DataKind, from_shareable
from nvflare.apis.fl_constant import ReservedKey
from nvflare.apis.fl_context import FLContext
from nvflare.apis.workspace import Workspace
from nvflare.app_common.abstract.model import make_model_learnable
from nvflare.app_common.app_constant import AppConstants

from consortium.aggregation.fednova import fednova_update
from consortium.flare.aggregators.round import ROUND_RECORD_EVENT, ROUND_RECORD_PROP, RoundAggregator
from consortium.flare.listeners.progress_writer import RoundProgressWriter
from consortium.protocol.round_record import RoundRecord

GLOBAL = {"w": np.zeros(2, dtype=np.float32)}


class _Engine:
    """FLARE's engine as far as these components use it: a workspace and an event bus."""

    def __init__(self, root):
        (root / "startup").mkdir(exist_ok=True)
        (root / "local").mkdir(exist_ok=True)
        self.workspace = Workspace(str(root), "server")
        self.handlers = []

    def get_workspace(self):
        return self.workspace

    def fire_event(self, event_type, fl_ctx):
        for h in self.handlers:
            h.handle_event(event_type, fl_ctx)


@pytest.fixture
def engine(tmp_path):
    return _Engine(tmp_path)


@pytest.fixture
def fl_ctx(engine, tmp_path):
    ctx = FLContext()
    ctx.set_prop(ReservedKey.ENGINE, engine, private=True, sticky=False)
    ctx.set_prop(ReservedKey.RUN_NUM, "job1", private=True, sticky=False)
    ctx.set_prop(AppConstants.CURRENT_ROUND, 3, private=True, sticky=False)
    ctx.set_prop(AppConstants.GLOBAL_MODEL, make_model_learnable(GLOBAL, {}), private=True, sticky=False)
    (tmp_path / "job1").mkdir()
    return ctx


def result(site, update, n=10, steps=5, a=5.0, drop=(), rnd=3, **meta):
    m = {"n_samples": n, "train_loss": 0.5, "train_seconds": 0.01, "val_n": 4, "val_score_sum": 3.0,
         "val_metric": "accuracy", "val_loss": 0.6, "local_steps": steps, "fednova_a": a} | meta
    for key in drop:
        del m[key]
    s = DXO(data_kind=DataKind.WEIGHT_DIFF, data={"w": np.asarray(update, dtype=np.float32)}, meta=m).to_shareable()
    s.set_peer_props({ReservedKey.IDENTITY_NAME: site})
    s.add_cookie(AppConstants.CONTRIBUTION_ROUND, rnd)
    return s


def records(tmp_path):
    return [json.loads(line) for line in (tmp_path / "job1" / "progress.jsonl").read_text().splitlines()]


def test_fedavg_weights_by_sample_count_and_the_listener_writes_the_record(engine, fl_ctx, tmp_path):
    engine.handlers.append(RoundProgressWriter())
    agg = RoundAggregator()
    assert agg.accept(result("a", [1.0, 0.0], n=10), fl_ctx)
    assert agg.accept(result("b", [0.0, 4.0], n=30), fl_ctx)
    assert not agg.accept(result("c", [np.nan, 0.0]), fl_ctx)

    out = from_shareable(agg.aggregate(fl_ctx))

    np.testing.assert_allclose(out.data["w"], [0.25, 3.0])
    line = records(tmp_path)[-1]
    assert (line["round"], line["sites"], line["pooled_score"]) == (3, 2, 0.75)
    assert line["contributors"] == ["a", "b"]
    assert line["rejected"] == {"c": "update from c: tensor 'w' has 1 non-finite values"}
    assert line["local_steps"] == {"a": 5, "b": 5} and line["finished_at"] > 0


def test_a_result_without_reporting_fields_is_combined_and_reported_incomplete(engine, fl_ctx, tmp_path):
    engine.handlers.append(RoundProgressWriter())
    agg = RoundAggregator()
    assert agg.accept(result("a", [1.0, 0.0], n=10), fl_ctx)
    assert agg.accept(result("b", [0.0, 4.0], n=30, drop=("train_loss", "val_n", "val_score_sum", "val_metric")), fl_ctx)

    out = from_shareable(agg.aggregate(fl_ctx))

    np.testing.assert_allclose(out.data["w"], [0.25, 3.0])
    assert records(tmp_path)[-1]["incomplete"] == {"b": ["train_loss", "val_metric", "val_n", "val_score_sum"]}


def test_a_result_without_n_samples_is_rejected(fl_ctx):
    agg = RoundAggregator()
    assert not agg.accept(result("a", [1.0, 1.0], drop=("n_samples",)), fl_ctx)
    assert agg.round.rejected == {"a": "result from a lacks meta field 'n_samples'"}


def test_fednova_adapter_matches_the_pure_update(fl_ctx):
    agg = RoundAggregator(algorithm="fednova")
    assert agg.accept(result("a", [2.0, 2.0], n=10, steps=2, a=2.0), fl_ctx)
    assert agg.accept(result("b", [9.0, 0.0], n=30, steps=9, a=9.0), fl_ctx)
    out = from_shareable(agg.aggregate(fl_ctx)).data["w"]
    expected = fednova_update([{"w": np.array([2.0, 2.0])}, {"w": np.array([9.0, 0.0])}], [10, 30], [2.0, 9.0], [2, 9])
    np.testing.assert_allclose(out, expected["w"], rtol=1e-6)
    assert not np.allclose(out, 0.25 * np.array([2.0, 2.0]) + 0.75 * np.array([9.0, 0.0]))


def test_fednova_rejects_a_result_without_normaliser_that_fedavg_combines(fl_ctx):
    assert not RoundAggregator(algorithm="fednova").accept(result("a", [1.0, 1.0], drop=("fednova_a",)), fl_ctx)
    assert RoundAggregator().accept(result("a", [1.0, 1.0], drop=("fednova_a",)), fl_ctx)


def test_a_non_weight_diff_result_is_rejected(fl_ctx):
    s = DXO(data_kind=DataKind.WEIGHTS, data={"w": np.zeros(2, dtype=np.float32)}, meta={"n_samples": 3}).to_shareable()
    s.set_peer_props({ReservedKey.IDENTITY_NAME: "a"})
    agg = RoundAggregator()
    assert not agg.accept(s, fl_ctx)
    assert "expected WEIGHT_DIFF" in agg.round.rejected["a"]


def test_fewer_accepted_sites_than_required_fails_the_round(fl_ctx):
    agg = RoundAggregator(min_accepted=2)
    assert agg.accept(result("a", [1.0, 1.0]), fl_ctx)
    with pytest.raises(RuntimeError, match="need min_accepted=2"):
        agg.aggregate(fl_ctx)


def test_late_result_of_an_earlier_round_is_discarded(fl_ctx):
    assert not RoundAggregator().accept(result("a", [1.0, 1.0], rnd=2), fl_ctx)


def test_the_next_round_starts_from_nothing(fl_ctx):
    agg = RoundAggregator()
    agg.accept(result("a", [1.0, 1.0]), fl_ctx)
    agg.aggregate(fl_ctx)
    fl_ctx.set_prop(AppConstants.CURRENT_ROUND, 4, private=True, sticky=False)
    assert agg.accept(result("a", [3.0, 3.0], rnd=4), fl_ctx)
    np.testing.assert_array_equal(from_shareable(agg.aggregate(fl_ctx)).data["w"], [3.0, 3.0])


def test_an_unwritable_progress_file_does_not_fail_the_round(engine, fl_ctx, tmp_path):
    (tmp_path / "job1").rmdir()
    (tmp_path / "job1").write_text("not a folder")  # the run folder cannot hold progress.jsonl
    engine.handlers.append(RoundProgressWriter())
    agg = RoundAggregator()
    agg.accept(result("a", [1.0, 1.0]), fl_ctx)

    out = from_shareable(agg.aggregate(fl_ctx))

    np.testing.assert_array_equal(out.data["w"], [1.0, 1.0])
    assert fl_ctx.get_prop(ROUND_RECORD_PROP)["contributors"] == ["a"]


def test_the_record_is_announced_as_an_event(engine, fl_ctx):
    seen = []

    class Listener(RoundProgressWriter):
        def handle_event(self, event_type, ctx):
            seen.append((event_type, ctx.get_prop(ROUND_RECORD_PROP)))

    engine.handlers.append(Listener())
    agg = RoundAggregator()
    agg.accept(result("a", [1.0, 1.0]), fl_ctx)
    agg.aggregate(fl_ctx)

    assert [e for e, _ in seen] == [ROUND_RECORD_EVENT] and seen[0][1]["round"] == 3


@pytest.mark.parametrize("kwargs, name", [({"algorithm": "median"}, "algorithm"), ({"tau_eff": "x", "algorithm": "fednova"}, "tau_eff"),
                                          ({"server_momentum": 1.0}, "beta"), ({"min_accepted": 0}, "min_accepted"),
                                          ({"max_update_norm": -1.0}, "max_norm")])
def test_bad_arguments_are_refused_when_the_job_is_built(kwargs, name):
    with pytest.raises(ValueError, match=name):
        RoundAggregator(**kwargs)


def test_a_result_flare_turned_away_is_named_with_the_sites_reason(engine, fl_ctx, tmp_path):
    from nvflare.apis.shareable import make_reply

    from consortium.protocol.site_result import REFUSAL_HEADER

    engine.handlers.append(RoundProgressWriter())
    agg = RoundAggregator()
    refused = make_reply("PRIVACY_REFUSED")
    refused.set_header(REFUSAL_HEADER, "epsilon 1.6 would exceed the site budget 1.5")
    agg.record_refusal("b", "PRIVACY_REFUSED", refused, fl_ctx)
    agg.accept(result("a", [1.0, 1.0], dp_epsilon=0.7), fl_ctx)

    agg.aggregate(fl_ctx)

    line = records(tmp_path)[-1]
    assert line["withheld"] == {"b": "epsilon 1.6 would exceed the site budget 1.5"}
    assert line["rejected"] == {"b": "b withheld its result (PRIVACY_REFUSED): epsilon 1.6 would exceed the site budget 1.5"}
    assert line["epsilon"] == {"a": 0.7} and line["incomplete"] == {}


def test_a_result_the_site_s_audit_trail_withheld_is_listed_with_the_site_s_reason(engine, fl_ctx, tmp_path):
    from consortium.flare.audit.site import withhold

    engine.handlers.append(RoundProgressWriter())
    agg = RoundAggregator()
    held = result("cleveland", [5.0, 5.0])
    withhold(held, "audit trail not writable at cleveland")  # what the site sends instead of its update
    assert not agg.accept(held, fl_ctx)
    agg.accept(result("a", [1.0, 1.0]), fl_ctx)

    agg.aggregate(fl_ctx)

    line = records(tmp_path)[-1]
    assert line["withheld"] == {"cleveland": "audit trail not writable at cleveland"}
    assert line["contributors"] == ["a"] and "cleveland withheld its result (AUDIT_FAILED)" in line["rejected"]["cleveland"]
    assert RoundRecord.from_dict(line).line(2).endswith("withheld: cleveland (audit trail not writable at cleveland)")  # what submit prints


def test_an_error_reply_without_a_reason_stays_rejected_and_the_withheld_list_starts_afresh_each_round(
        engine, fl_ctx, tmp_path):
    from nvflare.apis.shareable import make_reply

    from consortium.protocol.site_result import REFUSAL_HEADER

    engine.handlers.append(RoundProgressWriter())
    agg = RoundAggregator()
    refused = make_reply("PRIVACY_REFUSED")
    refused.set_header(REFUSAL_HEADER, "budget spent")
    agg.record_refusal("b", "PRIVACY_REFUSED", refused, fl_ctx)
    agg.accept(result("a", [1.0, 1.0]), fl_ctx)
    agg.aggregate(fl_ctx)
    fl_ctx.set_prop(AppConstants.CURRENT_ROUND, 4, private=True, sticky=False)
    agg.record_refusal("b", "EXECUTION_EXCEPTION", make_reply("EXECUTION_EXCEPTION"), fl_ctx)
    agg.accept(result("a", [1.0, 1.0], rnd=4), fl_ctx)

    agg.aggregate(fl_ctx)

    first, second = records(tmp_path)[-2:]
    assert first["withheld"] == {"b": "budget spent"}
    assert second["withheld"] == {}
    assert second["rejected"] == {"b": "b returned EXECUTION_EXCEPTION: no reason given"}


def test_a_revoked_site_s_result_is_refused_from_the_moment_the_admin_revokes_it(engine, fl_ctx, tmp_path):
    from nvflare.apis.event_type import EventType

    engine.handlers.append(RoundProgressWriter())
    agg = RoundAggregator()
    agg.handle_event(EventType.START_RUN, fl_ctx)
    assert agg.accept(result("a", [1.0, 0.0]), fl_ctx)
    (tmp_path / "disabled_clients.json").write_text(json.dumps({"disabled_clients": ["b"]}))  # FLARE's disable_client
    assert not agg.accept(result("b", [0.0, 4.0]), fl_ctx)
    agg.aggregate(fl_ctx)
    assert "b revoked by the consortium's admin" in records(tmp_path)[-1]["rejected"]["b"]

    (tmp_path / "disabled_clients.json").write_text("{not json")  # a damaged list: nobody's result is taken
    assert not agg.accept(result("a", [1.0, 0.0], rnd=3), fl_ctx)


def test_a_resume_file_outside_the_job_s_app_folder_is_refused(engine, fl_ctx, tmp_path):
    from nvflare.apis.event_type import EventType
    from nvflare.apis.fl_constant import FLContextKey

    from consortium.registry.store import load_arrays, save_arrays

    app = tmp_path / "job1" / "app_server"
    app.mkdir(parents=True)
    outside = tmp_path / "elsewhere.npz"
    digest = save_arrays(outside, GLOBAL, {"velocity/w": np.ones(2, dtype=np.float32)})
    fl_ctx.set_prop(FLContextKey.APP_ROOT, str(app), private=True, sticky=False)
    escape = "../../elsewhere.npz"
    assert load_arrays(os.path.join(app, escape), digest)[1]  # a plain join reads it: the path leaves the app

    agg = RoundAggregator(server_momentum=0.5, resume_from=escape, resume_sha256=digest)
    panics = []
    agg.system_panic = lambda reason, ctx: panics.append(reason)
    agg.handle_event(EventType.START_RUN, fl_ctx)

    assert len(panics) == 1 and "outside" in panics[0] and escape in panics[0]
    assert agg.round.step.velocity is None  # nothing was restored from it


def test_the_progress_line_is_the_announced_record_s_one_writer(engine, fl_ctx, tmp_path):
    engine.handlers.append(RoundProgressWriter())
    agg = RoundAggregator()
    agg.accept(result("a", [1.0, 1.0]), fl_ctx)

    agg.aggregate(fl_ctx)

    announced = RoundRecord.from_dict(fl_ctx.get_prop(ROUND_RECORD_PROP))
    written = (tmp_path / "job1" / "progress.jsonl").read_text()
    assert written == announced.to_json_line() + "\n"
    assert announced.site_update_bytes == {"a": 8} and announced.contributors == ["a"]


def test_a_record_that_breaks_the_contract_is_not_written(fl_ctx, tmp_path):
    warnings = []
    writer = RoundProgressWriter()
    writer.log_warning = lambda ctx, msg: warnings.append(msg)
    fl_ctx.set_prop(ROUND_RECORD_PROP, {"round": 3, "contributors": ["a"]}, private=True, sticky=False)

    writer.handle_event(ROUND_RECORD_EVENT, fl_ctx)

    assert not (tmp_path / "job1" / "progress.jsonl").exists()
    assert warnings == [f"{ROUND_RECORD_EVENT}: field 'sites' missing; nothing written"]
