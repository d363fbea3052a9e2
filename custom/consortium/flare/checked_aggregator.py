"""The part every consortium aggregator shares: accept only well-formed site results, and report
each round.

Contract with the sites: a WEIGHT_DIFF DXO (``w_local - w_global``) whose meta carries
``n_samples`` (> 0), ``train_loss``, ``val_n``, ``val_score_sum`` and ``val_metric`` (see
:class:`consortium.protocol.ResultMeta`), plus whatever :attr:`CheckedAggregator.extra_meta` a
subclass needs. A result without them is rejected, never combined with a guessed weight. After each
round one progress line is logged and appended as JSON to ``progress.jsonl`` in the job's server
workspace.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import time
from abc import abstractmethod

from nvflare.apis.dxo import DXO, DataKind, from_shareable
from nvflare.apis.fl_constant import ReservedKey, ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable
from nvflare.app_common.abstract.aggregator import Aggregator
from nvflare.app_common.abstract.model import ModelLearnableKey
from nvflare.app_common.app_constant import AppConstants

from consortium.aggregation.round_summary import SiteRoundReport, summarise_round
from consortium.aggregation.validation import check_update
from consortium.flare_files import PROGRESS_FILE
from consortium.protocol import ResultMeta


def meta_number(site: str, meta: dict, key: ResultMeta, kind: type = float):
    """``meta[key]`` as ``kind``; ValueError naming site, field and value when absent or bad."""
    if key.value not in meta:
        raise ValueError(f"result from {site} lacks meta field {key.value!r}")
    value = meta[key.value]
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"result from {site}: meta field {key.value!r} = {value!r} is not a finite number")
    if kind is int and value != int(value):
        raise ValueError(f"result from {site}: meta field {key.value!r} = {value!r} is not a whole number")
    return kind(value)


def metric_name(site: str, meta: dict) -> str:
    value = meta.get(ResultMeta.VAL_METRIC.value)
    if not isinstance(value, str) or not value:
        raise ValueError(f"result from {site}: meta field {ResultMeta.VAL_METRIC.value!r} = {value!r} must name the metric")
    return value


def site_report(site: str, meta: dict) -> SiteRoundReport:
    """The fields every aggregator needs from a site's result."""
    report = SiteRoundReport(
        site=site,
        n_samples=meta_number(site, meta, ResultMeta.N_SAMPLES, int),
        train_loss=meta_number(site, meta, ResultMeta.TRAIN_LOSS),
        val_n=meta_number(site, meta, ResultMeta.VAL_N, int),
        val_score_sum=meta_number(site, meta, ResultMeta.VAL_SCORE_SUM),
    )
    if report.n_samples <= 0:
        raise ValueError(f"result from {site}: n_samples = {report.n_samples} must be positive")
    return report


class CheckedAggregator(Aggregator):
    """Collects checked WEIGHT_DIFF results for one round; subclasses implement :meth:`combine`.

    Args:
        min_accepted: fewer accepted results than this fails the round instead of publishing a
            model built from too few sites (ScatterAndGather counts rejected results as responses).
    """

    def __init__(self, min_accepted: int = 1) -> None:
        super().__init__()
        if not isinstance(min_accepted, int) or min_accepted < 1:
            raise ValueError(f"min_accepted must be an integer >= 1, got {min_accepted!r}")
        self.min_accepted = min_accepted
        self.accepted: dict[str, tuple[dict, SiteRoundReport, dict]] = {}

    def check_meta(self, site: str, meta: dict) -> None:
        """Subclass hook: raise ValueError for metadata this aggregator cannot use."""

    @abstractmethod
    def combine(self, updates: list[dict], reports: list[SiteRoundReport], metas: list[dict]) -> dict:
        """The round's global update from the accepted sites (sorted by name)."""

    def accept(self, shareable: Shareable, fl_ctx: FLContext) -> bool:
        site = shareable.get_peer_prop(key=ReservedKey.IDENTITY_NAME, default="?")
        if shareable.get_return_code(ReturnCode.OK) != ReturnCode.OK:
            self.log_warning(fl_ctx, f"{site} returned {shareable.get_return_code()}; not aggregated")
            return False
        current = fl_ctx.get_prop(AppConstants.CURRENT_ROUND)
        contributed = shareable.get_cookie(AppConstants.CONTRIBUTION_ROUND)
        if contributed is not None and current is not None and contributed != current:
            self.log_warning(fl_ctx, f"{site}: late result for round {contributed} (now {current}); discarded")
            return False
        if site in self.accepted:
            self.log_warning(fl_ctx, f"{site}: second result in round {current}; discarded")
            return False
        try:
            dxo = from_shareable(shareable)
            if dxo.data_kind != DataKind.WEIGHT_DIFF:
                raise ValueError(f"result from {site} is {dxo.data_kind}, expected {DataKind.WEIGHT_DIFF}")
            check_update(site, dxo.data, self._global_weights(fl_ctx))
            report = site_report(site, dxo.meta)
            metric = metric_name(site, dxo.meta)
            others = {m[ResultMeta.VAL_METRIC.value] for _, _, m in self.accepted.values()}
            if others and others != {metric}:
                raise ValueError(f"result from {site} reports {metric!r}, other sites {sorted(others)}")
            self.check_meta(site, dxo.meta)
        except ValueError as e:
            self.log_error(fl_ctx, f"rejected: {e}")
            return False
        self.accepted[site] = (dxo.data, report, dict(dxo.meta))
        return True

    @staticmethod
    def _global_weights(fl_ctx: FLContext) -> dict | None:
        model = fl_ctx.get_prop(AppConstants.GLOBAL_MODEL)
        return model.get(ModelLearnableKey.WEIGHTS) if model is not None else None

    def aggregate(self, fl_ctx: FLContext) -> Shareable:
        if len(self.accepted) < self.min_accepted:
            sites = sorted(self.accepted)
            self.accepted = {}
            raise RuntimeError(f"round {fl_ctx.get_prop(AppConstants.CURRENT_ROUND)}: accepted results from {sites}, "
                               f"need min_accepted={self.min_accepted}")
        sites = sorted(self.accepted)
        updates, reports, metas = (list(x) for x in zip(*(self.accepted[s] for s in sites), strict=True))
        try:
            combined = self.combine(updates, reports, metas)
            self._report(fl_ctx, reports, metas)
        finally:
            self.accepted = {}
        return DXO(data_kind=DataKind.WEIGHT_DIFF, data=combined).to_shareable()

    def reset(self, fl_ctx: FLContext) -> None:
        self.accepted = {}

    def _report(self, fl_ctx: FLContext, reports: list[SiteRoundReport], metas: list[dict]) -> None:
        metric = metas[0][ResultMeta.VAL_METRIC.value]
        summary = summarise_round(int(fl_ctx.get_prop(AppConstants.CURRENT_ROUND, 0)), reports, metric)
        self.log_info(fl_ctx, summary.line())
        run_dir = fl_ctx.get_engine().get_workspace().get_run_dir(fl_ctx.get_job_id())
        train = [m.get(ResultMeta.TRAIN_SECONDS.value) for m in metas]
        train = [t for t in train if isinstance(t, numbers.Real)]
        # wall-clock stamp and the slowest site's training time: the orchestration overhead of a
        # round is the gap between stamps minus the training time (benchmarks/round_overhead.py)
        extra = {"finished_at": time.time(), "max_train_seconds": max(train, default=None),
                 "local_steps": {r.site: m.get(ResultMeta.LOCAL_STEPS.value) for r, m in zip(reports, metas, strict=True)}}
        with open(os.path.join(run_dir, PROGRESS_FILE), "a", encoding="utf-8") as f:
            f.write(json.dumps(summary.to_dict() | extra) + "\n")
