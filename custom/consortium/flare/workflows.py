"""FLARE's ScatterAndGather and CrossSiteModelEval with their ``task_check_period`` honoured.

In nvflare 2.9 ``Controller.set_communicator`` writes ``communicator.task_check_period`` while
``WFCommServer`` sleeps on ``communicator._task_check_period`` (default 0.2 s), so the workflow
argument never takes effect and every round waits up to 0.2 s + 0.2 s after the last result.
These subclasses change nothing else; the job JSON still reads "scatter-gather".
"""

from __future__ import annotations

from nvflare.apis.fl_constant import ReturnCode
from nvflare.app_common.app_constant import AppConstants
from nvflare.app_common.workflows.cross_site_model_eval import CrossSiteModelEval as _CrossSiteModelEval
from nvflare.app_common.workflows.scatter_and_gather import ScatterAndGather as _ScatterAndGather


class HonourTaskCheckPeriod:
    """Mixin for a FLARE Controller: pass its task_check_period to the communicator that uses it."""

    def set_communicator(self, communicator) -> None:
        super().set_communicator(communicator)
        if hasattr(communicator, "_task_check_period"):
            communicator._task_check_period = self._task_check_period


class ScatterAndGather(HonourTaskCheckPeriod, _ScatterAndGather):
    """nvflare's ScatterAndGather (same arguments) with ``task_check_period`` in effect, which also
    tells an aggregator that keeps round records (``record_refusal``) about a result FLARE itself
    turns away (an error or a site's privacy refusal never reaches ``accept``)."""

    def _accept_train_result(self, client_name: str, result, fl_ctx, is_unknown_task: bool = False) -> bool:
        rc = result.get_return_code()
        if rc and rc != ReturnCode.OK and not is_unknown_task and hasattr(self.aggregator, "record_refusal"):
            fl_ctx.set_prop(AppConstants.CURRENT_ROUND, self._current_round, private=True, sticky=True)
            self.aggregator.record_refusal(client_name, rc, result, fl_ctx)
        return super()._accept_train_result(client_name, result, fl_ctx, is_unknown_task)


class CrossSiteModelEval(HonourTaskCheckPeriod, _CrossSiteModelEval):
    """nvflare's CrossSiteModelEval (same arguments) with ``task_check_period`` in effect."""
