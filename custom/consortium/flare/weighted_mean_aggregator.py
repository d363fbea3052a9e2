"""FedAvg aggregator for ScatterAndGather: a thin adapter over
:func:`consortium.aggregation.weighted_mean.weighted_mean`.

Contract with the sites: a WEIGHT_DIFF DXO (``w_local - w_global``) whose meta carries
``n_samples`` (> 0), ``train_loss``, ``val_n`` and ``val_correct`` (see
:class:`consortium.protocol.ResultMeta`). A result without them is rejected, never averaged with a
guessed weight. After each round it logs one progress line and appends it as JSON to
``progress.jsonl`` in the job's server workspace.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import time

from nvflare.apis.dxo import DXO, DataKind, from_shareable
from nvflare.apis.fl_constant import ReservedKey, ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable
from nvflare.app_common.abstract.aggregator import Aggregator
from nvflare.app_common.app_constant import AppConstants

from consortium.aggregation.round_summary import SiteRoundReport, summarise_round
from consortium.aggregation.weighted_mean import sample_weights, weighted_mean
from consortium.flare_files import PROGRESS_FILE
from consortium.protocol import ResultMeta


def site_report(site: str, meta: dict) -> SiteRoundReport:
    """Read and check the metadata a site must send; ValueError names the missing/bad field."""
    def field(key: ResultMeta, kind):
        if key.value not in meta:
            raise ValueError(f"result from {site} lacks meta field {key.value!r}")
        value = meta[key.value]
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
            raise ValueError(f"result from {site}: meta field {key.value!r} = {value!r} is not a finite number")
        if kind is int and value != int(value):
            raise ValueError(f"result from {site}: meta field {key.value!r} = {value!r} is not a whole number")
        return kind(value)

    report = SiteRoundReport(
        site=site,
        n_samples=field(ResultMeta.N_SAMPLES, int),
        train_loss=field(ResultMeta.TRAIN_LOSS, float),
        val_n=field(ResultMeta.VAL_N, int),
        val_correct=field(ResultMeta.VAL_CORRECT, int),
    )
    if report.n_samples <= 0:
        raise ValueError(f"result from {site}: n_samples = {report.n_samples} must be positive")
    return report


class WeightedMeanAggregator(Aggregator):
    def __init__(self, expected_data_kind: str = DataKind.WEIGHT_DIFF) -> None:
        super().__init__()
        if expected_data_kind not in (DataKind.WEIGHT_DIFF, DataKind.WEIGHTS):
            raise ValueError(f"expected_data_kind must be WEIGHT_DIFF or WEIGHTS, got {expected_data_kind!r}")
        self.expected_data_kind = expected_data_kind
        self.accepted: dict[str, tuple[dict, SiteRoundReport]] = {}
        self.train_seconds: dict[str, float] = {}

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
            if dxo.data_kind != self.expected_data_kind:
                raise ValueError(f"result from {site} is {dxo.data_kind}, expected {self.expected_data_kind}")
            report = site_report(site, dxo.meta)
        except ValueError as e:
            self.log_error(fl_ctx, f"rejected: {e}")
            return False
        self.accepted[site] = (dxo.data, report)
        self.train_seconds[site] = float(dxo.meta.get(ResultMeta.TRAIN_SECONDS.value, float("nan")))
        return True

    def aggregate(self, fl_ctx: FLContext) -> Shareable:
        if not self.accepted:
            raise RuntimeError("no accepted results to aggregate this round")
        sites = sorted(self.accepted)
        updates = [self.accepted[s][0] for s in sites]
        reports = [self.accepted[s][1] for s in sites]
        combined = weighted_mean(updates, sample_weights([r.n_samples for r in reports]))
        self._report(summarise_round(int(fl_ctx.get_prop(AppConstants.CURRENT_ROUND, 0)), reports), fl_ctx)
        self.accepted, self.train_seconds = {}, {}
        return DXO(data_kind=self.expected_data_kind, data=combined).to_shareable()

    def reset(self, fl_ctx: FLContext) -> None:
        self.accepted, self.train_seconds = {}, {}

    def _report(self, summary, fl_ctx: FLContext) -> None:
        self.log_info(fl_ctx, summary.line())
        run_dir = fl_ctx.get_engine().get_workspace().get_run_dir(fl_ctx.get_job_id())
        with open(os.path.join(run_dir, PROGRESS_FILE), "a", encoding="utf-8") as f:
            # wall-clock stamp and the slowest site's training time: orchestration overhead per round
            # is the gap between stamps minus the training time (benchmarks/round_overhead.py)
            extra = {"finished_at": time.time(), "max_train_seconds": max(self.train_seconds.values(), default=None)}
            f.write(json.dumps(summary.to_dict() | extra) + "\n")
