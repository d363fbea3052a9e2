"""The site's DP result filter: every result that leaves the site is a DP release, post-processing
of one, or refused. A thin adapter over :mod:`consortium.privacy`.

Declared in the site's ``local/privacy.json`` (a scope's ``task_result_filters``), it runs on every
task's result, before the job's own filters (so before an HE encrypt filter):

* ``train`` (WEIGHT_DIFF): the update is clipped to C and noised with σ·Δ
  (:func:`~consortium.privacy.gaussian.gaussian_update`), unless the executor already ran DP-SGD
  and declared it (:mod:`consortium.privacy.declaration`); either way the release is charged to
  the site's ledger *first*, and a release over budget is not made. The metadata is cut to what
  the contract's release rules allow (:func:`~consortium.privacy.release.released_meta`).
* ``validate`` (METRICS): counts and sums coarsened, loss dropped; not accounted (test split).
* ``submit_model`` (WEIGHTS): refused, unless it is the DP-SGD model whose update this job
  already released and charged (``w_global + update``: post-processing).
* anything else with data, e.g. ``feature_stats`` (STATISTICS): refused. A DP job standardises
  with public ranges instead.

A refusal is a reply without data whose return code is :data:`PRIVACY_REFUSED` and whose header
:data:`REFUSAL_HEADER` holds the reason (also logged at the site as an error). Any error inside the
filter makes FLARE send ``TASK_RESULT_FILTER_ERROR`` instead, with no data: it fails closed.
Applied twice (site and job both configured), the second instance sees the first one's
declaration and neither noises nor charges again, and says so in the log.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from nvflare.apis.dxo import DXO, DataKind, MetaKey, from_shareable
from nvflare.apis.filter import Filter, FilterContextKey, FilterSource
from nvflare.apis.fl_constant import ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import ReservedHeaderKey, Shareable, make_reply
from nvflare.apis.utils.fl_context_utils import add_job_audit_event

from consortium.privacy.declaration import EPSILON_KEY, KEYS, MODEL_OF_KEY, declare, declared
from consortium.privacy.dp_sgd import MECHANISM as DP_SGD
from consortium.privacy.gaussian import gaussian_update
from consortium.privacy.ledger import BudgetExceeded, PrivacyLedger, Release
from consortium.privacy.release import coarsen_count, coarsen_sum, released_meta
from consortium.privacy.update_privacy import UpdatePrivacyPolicy
from consortium.protocol.evaluation import Evaluation
from consortium.protocol.site_result import REFUSAL_HEADER

GAUSSIAN_UPDATE = "gaussian_update"
PRIVACY_REFUSED = "PRIVACY_REFUSED"
FLARE_META = frozenset({MetaKey.NUM_STEPS_CURRENT_ROUND})  # the filter history is carried over explicitly
PUBLIC_META = frozenset({"val_metric"})  # a metric's name, not data: kept though the contract allows dropping it


class GaussianUpdatePrivacy(Filter):
    def __init__(self, **policy) -> None:
        """Args: the fields of :class:`~consortium.privacy.update_privacy.UpdatePrivacyPolicy`, checked here
        (ValueError naming the argument and value), so a bad policy stops the site, not a round."""
        super().__init__()
        self.policy = UpdatePrivacyPolicy(**policy)
        self.rng = np.random.default_rng(self.policy.noise_seed)
        self._ledgers: dict[Path, PrivacyLedger] = {}

    # -- helpers ---------------------------------------------------------------------------------
    def ledger(self, fl_ctx: FLContext) -> PrivacyLedger:
        path = Path(self.policy.ledger_path)
        if not path.is_absolute():
            path = Path(fl_ctx.get_engine().get_workspace().get_root_dir()) / path
        if path not in self._ledgers:
            p = self.policy
            self._ledgers[path] = PrivacyLedger(path, p.site_epsilon_budget, p.delta, p.accountant)
        return self._ledgers[path]

    def refuse(self, fl_ctx: FLContext, reason: str) -> Shareable:
        self.log_error(fl_ctx, f"privacy: release refused: {reason}")
        add_job_audit_event(fl_ctx, msg=f"consortium privacy refusal: {reason}")
        reply = make_reply(PRIVACY_REFUSED)
        reply.set_header(REFUSAL_HEADER, reason)
        return reply

    def _meta(self, meta: dict) -> dict:
        return released_meta(meta, keep=FLARE_META | PUBLIC_META | KEYS, count_step=self.policy.count_step)

    def _with_history(self, out: DXO, before: DXO) -> DXO:
        out.add_filter_history(list(before.get_filter_history() or []))
        out.add_filter_history(type(self).__name__)
        return out

    # -- the filter ------------------------------------------------------------------------------
    def process(self, shareable: Shareable, fl_ctx: FLContext) -> Shareable:
        rc = shareable.get_return_code(ReturnCode.OK)
        if rc != ReturnCode.OK:  # a failure carries no data out, but keeps a refusal's reason (site filter first)
            reply = make_reply(rc)
            if shareable.get_header(REFUSAL_HEADER):
                reply.set_header(REFUSAL_HEADER, shareable.get_header(REFUSAL_HEADER))
            return reply
        try:
            dxo = from_shareable(shareable)
        except Exception:
            if set(shareable) - {ReservedHeaderKey.HEADERS}:
                return self.refuse(fl_ctx, "a result that is not a DXO carries data; not released under DP")
            return shareable  # an acknowledgement without data (e.g. set_standardisation)
        handlers = {DataKind.WEIGHT_DIFF: self._update, DataKind.WEIGHTS: self._model, DataKind.METRICS: self._metrics}
        handler = handlers.get(dxo.data_kind)
        if handler is None:
            return self.refuse(fl_ctx, f"{dxo.data_kind} results are not released under DP (feature moments: "
                                       "use a public standardisation)")
        return handler(dxo, shareable, fl_ctx)

    def _update(self, dxo: DXO, shareable: Shareable, fl_ctx: FLContext) -> Shareable:
        job = fl_ctx.get_job_id()
        prior = declared(dxo.meta)
        if prior is not None and prior.mechanism == GAUSSIAN_UPDATE:
            if self.get_prop(FilterContextKey.SOURCE) == FilterSource.SITE:  # site filters run first
                return self.refuse(fl_ctx, "the result already declares update-level DP before the site's filter ran")
            self.log_warning(fl_ctx, "privacy: DP applied twice (site and job): the update is already "
                                     "privatised and charged; not noised or charged again")
            return shareable
        if prior is not None and prior.mechanism != DP_SGD:
            return self.refuse(fl_ctx, f"unknown DP mechanism declared: {prior.mechanism!r}")
        p = self.policy
        release = prior or Release(GAUSSIAN_UPDATE, p.sigma, p.clip_norm, 1.0, 1)
        try:
            charge = self.ledger(fl_ctx).charge(job, release, p.job_budget)
        except BudgetExceeded as e:
            return self.refuse(fl_ctx, str(e))
        data = dxo.data if prior else gaussian_update(dxo.data, p.clip_norm, p.sigma, self.rng, p.adjacency)
        meta = declare(self._meta(dxo.meta), release)
        meta[EPSILON_KEY] = charge.job_epsilon
        out = self._with_history(DXO(data_kind=DataKind.WEIGHT_DIFF, data=data, meta=meta), dxo)
        self.log_info(fl_ctx, f"privacy: released {release.mechanism} (sigma {release.noise_multiplier:.4g}, "
                              f"C {release.clip_norm:g}); job epsilon {charge.job_epsilon:.3f}, site "
                              f"{charge.total_epsilon:.3f} of {charge.epsilon_budget:g} (delta {p.delta:g})")
        return out.update_shareable(shareable)

    def _model(self, dxo: DXO, shareable: Shareable, fl_ctx: FLContext) -> Shareable:
        job = fl_ctx.get_job_id()
        if dxo.meta.get(MODEL_OF_KEY) == DP_SGD:
            charged = self.ledger(fl_ctx).read()["jobs"].get(job, {}).get("releases", [])
            if any(r["mechanism"] == DP_SGD for r in charged):
                out = DXO(data_kind=DataKind.WEIGHTS, data=dxo.data, meta=self._meta(dxo.meta))
                return self._with_history(out, dxo).update_shareable(shareable)
        return self.refuse(fl_ctx, "submit_model: the site's local model is not a DP release of this job "
                                   "(under update-level DP it is the noiseless model); blocked")

    def _metrics(self, dxo: DXO, shareable: Shareable, fl_ctx: FLContext) -> Shareable:
        """The validate task's :class:`~consortium.protocol.evaluation.Evaluation`: n and
        score_sum coarsened (the mean follows from them), loss and anything else dropped."""
        try:
            got = Evaluation.from_dict(dxo.data)
        except ValueError as e:
            return self.refuse(fl_ctx, f"{e}; not released")
        n_coarse = coarsen_count(got.n, self.policy.count_step)
        released = Evaluation(got.metric, n_coarse, coarsen_sum(got.score_sum, got.n, n_coarse))
        out = DXO(data_kind=DataKind.METRICS, data=released.to_dict(), meta={})
        return self._with_history(out, dxo).update_shareable(shareable)
