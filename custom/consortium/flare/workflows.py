"""FLARE's ScatterAndGather and CrossSiteModelEval with their ``task_check_period`` honoured.

In nvflare 2.9 ``Controller.set_communicator`` writes ``communicator.task_check_period`` while
``WFCommServer`` sleeps on ``communicator._task_check_period`` (default 0.2 s), so the workflow
argument never takes effect and every round waits up to 0.2 s + 0.2 s after the last result.
These subclasses change nothing else; the job JSON still reads "scatter-gather".
"""

from __future__ import annotations

from nvflare.app_common.workflows.cross_site_model_eval import CrossSiteModelEval as _CrossSiteModelEval
from nvflare.app_common.workflows.scatter_and_gather import ScatterAndGather as _ScatterAndGather


class HonourTaskCheckPeriod:
    """Mixin for a FLARE Controller: pass its task_check_period to the communicator that uses it."""

    def set_communicator(self, communicator) -> None:
        super().set_communicator(communicator)
        if hasattr(communicator, "_task_check_period"):
            communicator._task_check_period = self._task_check_period


class ScatterAndGather(HonourTaskCheckPeriod, _ScatterAndGather):
    """nvflare's ScatterAndGather (same arguments) with ``task_check_period`` in effect."""


class CrossSiteModelEval(HonourTaskCheckPeriod, _CrossSiteModelEval):
    """nvflare's CrossSiteModelEval (same arguments) with ``task_check_period`` in effect."""
