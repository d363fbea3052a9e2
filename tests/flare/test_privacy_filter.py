"""The site's DP result filter with real Shareables and FLARE's own filter machinery: every result
leaves as a charged DP release, post-processing of one, or a refusal."""

from __future__ import annotations

import json

import numpy as np
import pytest
from nvflare.apis.dxo import DXO, DataKind, MetaKey, from_shareable
from nvflare.apis.filter import FilterContextKey, FilterSource
from nvflare.apis.fl_constant import FilterKey, ReservedKey, ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable, make_reply
from nvflare.apis.utils.task_utils import apply_filters
from nvflare.apis.workspace import Workspace

from consortium.flare.filters.dp import PRIVACY_REFUSED, GaussianUpdatePrivacy
from consortium.privacy.declaration import EPSILON_KEY, MODEL_OF_KEY, declare, declared
from consortium.privacy.gaussian import global_norm
from consortium.privacy.ledger import Release
from consortium.protocol.site_result import REFUSAL_HEADER

POLICY = {"clip_norm": 1.0, "noise_multiplier": 2.0, "site_epsilon_budget": 50.0, "noise_seed": 0}
META = {"n_samples": 203, "local_steps": 26, "fednova_a": 26.0, "train_loss": 0.4, "train_seconds": 0.1,
        "val_metric": "accuracy", "val_n": 67, "val_score_sum": 53.0, "val_loss": 0.5}


class _Engine:
    def __init__(self, root):
        for d in ("startup", "local"):
            (root / d).mkdir(exist_ok=True)
        self.workspace = Workspace(str(root), "cleveland")

    def get_workspace(self):
        return self.workspace

    def fire_event(self, event_type, fl_ctx):
        pass


@pytest.fixture
def fl_ctx(tmp_path):
    ctx = FLContext()
    ctx.set_prop(ReservedKey.ENGINE, _Engine(tmp_path), private=True, sticky=False)
    ctx.set_prop(ReservedKey.RUN_NUM, "job1", private=True, sticky=False)
    return ctx


def ledger(tmp_path):
    return json.loads((tmp_path / "privacy" / "ledger.json").read_text())


def train_result(update=(30.0, 40.0), **meta):
    return DXO(DataKind.WEIGHT_DIFF, {"w": np.asarray(update, dtype=np.float32)}, META | meta).to_shareable()


def site_filter(**policy):
    f = GaussianUpdatePrivacy(**(POLICY | policy))
    f.set_prop(FilterContextKey.SOURCE, FilterSource.SITE)
    return f


def test_the_update_is_clipped_noised_charged_and_its_metadata_coarsened(fl_ctx, tmp_path):
    f = site_filter(noise_multiplier=1e-3, site_epsilon_budget=1e9)  # next to no noise (and no privacy)
    out = from_shareable(f.process(train_result(), fl_ctx))

    assert global_norm(out.data) == pytest.approx(1.0, abs=0.01)  # norm 50 clipped to C = 1
    assert out.meta["n_samples"] == 200 and out.meta["local_steps"] == 26 and "train_loss" not in out.meta
    assert out.meta["val_metric"] == "accuracy" and out.meta["val_n"] == 70 and "val_loss" not in out.meta
    assert declared(out.meta).mechanism == "gaussian_update"
    assert out.get_filter_history() == ["GaussianUpdatePrivacy"]
    assert ledger(tmp_path)["jobs"]["job1"]["epsilon"] == pytest.approx(out.meta[EPSILON_KEY])


def test_noise_is_sigma_times_c_on_every_coordinate(fl_ctx):
    zeros = train_result(update=np.zeros(100_000))

    out = from_shareable(site_filter(clip_norm=0.5, noise_multiplier=2.0).process(zeros, fl_ctx))

    assert float(np.std(out.data["w"])) == pytest.approx(1.0, rel=0.02)


def test_budget_exhaustion_stops_releases_with_a_reason_the_server_can_read(fl_ctx, tmp_path):
    f = site_filter(noise_multiplier=3.0, site_epsilon_budget=3.0)
    replies = [f.process(train_result(), fl_ctx) for _ in range(12)]

    codes = [r.get_return_code() for r in replies]
    assert ReturnCode.OK in codes and codes[-1] == PRIVACY_REFUSED
    first_refusal = codes.index(PRIVACY_REFUSED)
    assert all(c == PRIVACY_REFUSED for c in codes[first_refusal:])
    refused = replies[-1]
    assert "site budget" in refused.get_header(REFUSAL_HEADER) and "DXO" not in refused
    assert ledger(tmp_path)["jobs"]["job1"]["releases"][0]["rounds"] == first_refusal
    assert ledger(tmp_path)["epsilon_total"] <= 3.0


def test_the_budget_survives_a_restart_of_the_site(fl_ctx):
    # σ = 3: one release spends ε 0.96, two 1.44 (RDP, δ = 1e-3)
    first = site_filter(noise_multiplier=3.0, site_epsilon_budget=1.2).process(train_result(), fl_ctx)
    assert first.get_return_code() == ReturnCode.OK

    restarted = site_filter(noise_multiplier=3.0, site_epsilon_budget=1.2)  # new process, same ledger file

    assert restarted.process(train_result(), fl_ctx).get_return_code() == PRIVACY_REFUSED


def test_submit_model_of_update_level_dp_releases_no_weights(fl_ctx):
    local_model = DXO(DataKind.WEIGHTS, {"w": np.ones(2, dtype=np.float32)}).to_shareable()

    reply = site_filter().process(local_model, fl_ctx)

    assert reply.get_return_code() == PRIVACY_REFUSED and "DXO" not in reply
    assert "submit_model" in reply.get_header(REFUSAL_HEADER)


def test_dp_sgd_update_is_charged_not_noised_again_and_its_model_may_be_submitted(fl_ctx, tmp_path):
    sgd = Release("dp_sgd", 1.1, 1.0, 0.1, 26)
    dxo = DXO(DataKind.WEIGHT_DIFF, {"w": np.array([0.3, 0.4], dtype=np.float32)}, declare(dict(META), sgd))
    f = site_filter()

    out = from_shareable(f.process(dxo.to_shareable(), fl_ctx))
    model = DXO(DataKind.WEIGHTS, {"w": np.ones(2, dtype=np.float32)}, {MODEL_OF_KEY: "dp_sgd"}).to_shareable()
    submitted = f.process(model, fl_ctx)

    np.testing.assert_array_equal(out.data["w"], np.array([0.3, 0.4], dtype=np.float32))
    assert ledger(tmp_path)["jobs"]["job1"]["releases"][0]["mechanism"] == "dp_sgd"
    assert submitted.get_return_code(ReturnCode.OK) == ReturnCode.OK
    np.testing.assert_array_equal(from_shareable(submitted).data["w"], [1.0, 1.0])


def test_feature_moments_are_not_released(fl_ctx):
    stats = DXO(DataKind.STATISTICS, {"n": 200, "sum": [1.0], "sum_sq": [2.0]}).to_shareable()

    reply = site_filter().process(stats, fl_ctx)

    assert reply.get_return_code() == PRIVACY_REFUSED and "DXO" not in reply


def test_validation_metrics_are_coarsened_and_loss_dropped(fl_ctx):
    metrics = DXO(DataKind.METRICS, {"accuracy": 53 / 67, "loss": 0.5, "n": 67, "score_sum": 53.0,
                                     "metric": "accuracy"}).to_shareable()

    out = from_shareable(site_filter().process(metrics, fl_ctx)).data

    assert out == {"metric": "accuracy", "n": 70, "score_sum": pytest.approx(0.79 * 70), "accuracy": pytest.approx(0.79)}


def test_validation_metrics_that_break_the_contract_are_refused_naming_the_field(fl_ctx):
    metrics = DXO(DataKind.METRICS, {"accuracy": 0.79, "n": "67", "score_sum": 53.0, "metric": "accuracy"}).to_shareable()

    reply = site_filter().process(metrics, fl_ctx)

    assert reply.get_return_code() == PRIVACY_REFUSED and "DXO" not in reply
    assert "field 'n' must be an integer" in reply.get_header(REFUSAL_HEADER)


def test_an_acknowledgement_without_data_passes_and_a_failure_carries_nothing(fl_ctx):
    ack = make_reply(ReturnCode.OK)
    failed = make_reply(ReturnCode.EXECUTION_EXCEPTION)
    failed["leak"] = [1, 2, 3]

    assert site_filter().process(ack, fl_ctx) is ack
    assert "leak" not in site_filter().process(failed, fl_ctx)


def test_dp_at_site_and_job_is_applied_once(fl_ctx, tmp_path):
    site, job = site_filter(), GaussianUpdatePrivacy(**POLICY)
    job.set_prop(FilterContextKey.SOURCE, FilterSource.JOB)

    once = from_shareable(site.process(train_result(), fl_ctx)).data["w"].copy()
    twice = from_shareable(job.process(site.process(train_result(), fl_ctx), fl_ctx))

    assert ledger(tmp_path)["jobs"]["job1"]["releases"][0]["rounds"] == 2  # two results, one charge each
    assert twice.get_filter_history() == ["GaussianUpdatePrivacy"]
    assert not np.allclose(once, twice.data["w"])  # fresh noise per result, none added by the job's filter


def test_a_declaration_forged_before_the_site_filter_is_refused(fl_ctx):
    forged = DXO(DataKind.WEIGHT_DIFF, {"w": np.ones(2, dtype=np.float32)},
                 declare(dict(META), Release("gaussian_update", 100.0, 1.0, 1.0, 1))).to_shareable()

    assert site_filter().process(forged, fl_ctx).get_return_code() == PRIVACY_REFUSED


@pytest.mark.parametrize("bad,match", [({"clip_norm": 0}, "clip_norm"), ({"site_epsilon_budget": -1}, "site_epsilon_budget"),
                                       ({"noise_multiplier": None}, "exactly one"), ({"adjacency": "swap"}, "adjacency"),
                                       ({"noise_multiplier": None, "target_epsilon": 1.0}, "planned_rounds")])
def test_a_bad_policy_stops_the_site_when_the_filter_is_built(bad, match):
    with pytest.raises(ValueError, match=match):
        GaussianUpdatePrivacy(**(POLICY | bad))


def test_site_scope_filter_runs_through_flares_apply_filters_before_the_jobs(fl_ctx):
    from nvflare.private.privacy_manager import Scope

    scope = Scope()
    scope.add_task_result_filter(GaussianUpdatePrivacy(**POLICY), FilterKey.OUT)
    fl_ctx.set_prop("__scope_object__", scope, private=True, sticky=False)

    out = apply_filters(Scope.TASK_RESULT_FILTERS_NAME, train_result(), fl_ctx, {}, "train", FilterKey.OUT)

    assert declared(from_shareable(out).meta) is not None
    assert from_shareable(out).get_meta_prop(MetaKey.FILTER_HISTORY) == ["GaussianUpdatePrivacy"]


def test_a_non_dxo_result_with_data_is_refused(fl_ctx):
    s = Shareable()
    s["rows"] = [[1, 2, 3]]
    assert site_filter().process(s, fl_ctx).get_return_code() == PRIVACY_REFUSED


def test_a_second_dp_filter_passes_the_first_ones_refusal_on_with_its_reason(fl_ctx):
    """A job asking for the 'dp' scope runs the site's filter, then its own: the site's refusal
    reason must reach the server, not only the return code."""
    refusal = make_reply(PRIVACY_REFUSED)
    refusal.set_header(REFUSAL_HEADER, "site budget: this release would bring the site's ε to 24.1 > 24.0")
    refusal["leaked"] = [1.0]  # nothing but the code and the reason goes on

    out = site_filter().process(refusal, fl_ctx)

    assert out.get_return_code() == PRIVACY_REFUSED
    assert out.get_header(REFUSAL_HEADER).startswith("site budget")
    assert "leaked" not in out
