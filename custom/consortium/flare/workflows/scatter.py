"""FLARE's ScatterAndGather and CrossSiteModelEval with their ``task_check_period`` honoured, and
ScatterAndGather made to survive sites that die or straggle.

In nvflare 2.9 ``Controller.set_communicator`` writes ``communicator.task_check_period`` while
``WFCommServer`` sleeps on ``communicator._task_check_period`` (default 0.2 s), so the workflow
argument never takes effect and every round waits up to 0.2 s + 0.2 s after the last result.

Quorum (k of n): a round is broadcast to every site and ends when all have answered, or when
``min_clients`` (k) have answered and ``wait_time_after_min_received`` more seconds have passed, or
at ``train_timeout`` (the straggler limit). When fewer than the aggregator's ``min_accepted``
results were accepted, the round is asked again of the sites that did not answer, up to
``max_round_retries`` times; if the quorum is still not reached, training stops cleanly: the
last global model stays the job's model, the reason is written to ``training_status.json`` in
the run folder and the log, and the remaining workflows (cross-site evaluation) run as planned.
Nothing raises; the job ends COMPLETED with the status file saying it stopped early. The job JSON
still reads "scatter-gather".

Incident controls (:mod:`consortium.flare.incident`): before each round's broadcast the workflow
reads the admin's controls, waits while the job is frozen (no new global model leaves the server),
and tells the aggregator the round's start time, the quarantined sites and the controls applied.
"""

from __future__ import annotations

import json
import os
import time

from nvflare.apis.controller_spec import Task
from nvflare.apis.fl_constant import ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.utils.fl_context_utils import add_job_audit_event
from nvflare.app_common.app_constant import AppConstants
from nvflare.app_common.workflows.cross_site_model_eval import CrossSiteModelEval as _CrossSiteModelEval
from nvflare.app_common.workflows.scatter_and_gather import ScatterAndGather as _ScatterAndGather

from consortium.flare.aggregators.round import RoundControlled, RoundControls
from consortium.flare.incident import IncidentGate
from consortium.protocol.files import TRAINING_STATUS_FILE


class HonourTaskCheckPeriod:
    """Mixin for a FLARE Controller: pass its task_check_period to the communicator that uses it."""

    def set_communicator(self, communicator) -> None:
        super().set_communicator(communicator)
        if hasattr(communicator, "_task_check_period"):
            communicator._task_check_period = self._task_check_period


class ScatterAndGather(HonourTaskCheckPeriod, _ScatterAndGather):
    """nvflare's ScatterAndGather (same arguments) with ``task_check_period`` in effect, k-of-n
    rounds with retries (``max_round_retries``; see the module docstring), and an aggregator that
    keeps round records told about a result FLARE itself turns away (an error or a site's privacy
    refusal never reaches ``accept``)."""

    def __init__(self, *args, max_round_retries: int = 0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(max_round_retries, int) or isinstance(max_round_retries, bool) or max_round_retries < 0:
            raise ValueError(f"scatter_and_gather: max_round_retries must be an integer >= 0, got {max_round_retries!r}")
        if max_round_retries and not self._train_timeout:
            raise ValueError(f"scatter_and_gather: max_round_retries = {max_round_retries} needs train_timeout > 0 (the "
                             "straggler limit), else a retry sent to a dead site waits for ever")
        self.max_round_retries = max_round_retries
        self.stopped_reason: str | None = None
        self.incidents = IncidentGate(self)

    def _accept_train_result(self, client_name: str, result, fl_ctx, is_unknown_task: bool = False) -> bool:
        rc = result.get_return_code()
        if rc and rc != ReturnCode.OK and not is_unknown_task and isinstance(self.aggregator, RoundControlled):
            fl_ctx.set_prop(AppConstants.CURRENT_ROUND, self._current_round, private=True, sticky=True)
            self.aggregator.record_refusal(client_name, rc, result, fl_ctx)
        return super()._accept_train_result(client_name, result, fl_ctx, is_unknown_task)

    def broadcast_and_wait(self, task: Task, fl_ctx: FLContext, targets=None, min_responses: int = 1,
                           wait_time_after_min_received: int = 0, abort_signal=None):
        if task.name == self.train_task_name:
            state = self.incidents.hold_while_frozen(fl_ctx, abort_signal, self._current_round)
            if abort_signal is not None and abort_signal.triggered:
                return
            if isinstance(self.aggregator, RoundControlled):
                self.aggregator.set_round_controls(RoundControls(time.time(), dict(state.quarantined),
                                                                 tuple(self.incidents.take_applied())))
        super().broadcast_and_wait(task, fl_ctx, targets, min_responses, wait_time_after_min_received, abort_signal)
        if task.name != self.train_task_name or not isinstance(self.aggregator, RoundControlled):
            return
        for attempt in range(1, self.max_round_retries + 1):
            shortfall = self.aggregator.quorum_shortfall(fl_ctx)
            if shortfall is None or (abort_signal is not None and abort_signal.triggered):
                return
            silent = [c.name for c in self._engine.get_clients() if c.name not in shortfall.answered]
            if not silent:
                break  # every site answered and too few were accepted: asking again changes nothing
            self.log_warning(fl_ctx, f"round {self._current_round}: {shortfall.reason}; asking {silent} again "
                                     f"(retry {attempt} of {self.max_round_retries})")
            retry = Task(name=task.name, data=task.data, props={}, timeout=task.timeout, operator=task.operator,
                         before_task_sent_cb=task.before_task_sent_cb, result_received_cb=task.result_received_cb)
            super().broadcast_and_wait(retry, fl_ctx, silent, min(min_responses, len(silent)),
                                       wait_time_after_min_received, abort_signal)
        shortfall = self.aggregator.quorum_shortfall(fl_ctx)
        if shortfall is not None:
            self._stop_training(f"round {self._current_round}: {shortfall.reason} after {self.max_round_retries} "
                                f"retr{'y' if self.max_round_retries == 1 else 'ies'}; training stopped, the global "
                                f"model of round {self._current_round - 1} is the job's model", fl_ctx)

    def _stop_training(self, reason: str, fl_ctx: FLContext) -> None:
        self.stopped_reason = reason
        self.log_error(fl_ctx, f"QUORUM NOT REACHED: {reason}")
        add_job_audit_event(fl_ctx, msg=f"consortium training stopped: {reason}")
        if self.persistor is not None and self._global_weights is not None:
            self.persistor.save(self._global_weights, fl_ctx)  # the model cross-site evaluation locates
        write_training_status(fl_ctx, {"status": "stopped", "round": self._current_round, "reason": reason,
                                       "at": time.time()}, self)

    def _check_abort_signal(self, fl_ctx, abort_signal) -> bool:
        if self.stopped_reason is not None:
            self._phase = AppConstants.PHASE_FINISHED
            return True  # FLARE's loop then returns; the job's other workflows still run
        return super()._check_abort_signal(fl_ctx, abort_signal)

    def control_flow(self, abort_signal, fl_ctx: FLContext) -> None:
        super().control_flow(abort_signal, fl_ctx)
        if self.stopped_reason is None and not abort_signal.triggered and self._phase == AppConstants.PHASE_FINISHED:
            write_training_status(fl_ctx, {"status": "completed", "round": self._current_round - 1,
                                           "rounds": self._num_rounds, "at": time.time()}, self)


def write_training_status(fl_ctx: FLContext, status: dict, component) -> None:
    """``training_status.json`` in the job's run folder (downloaded with the result)."""
    try:
        run_dir = fl_ctx.get_engine().get_workspace().get_run_dir(fl_ctx.get_job_id())
        with open(os.path.join(run_dir, TRAINING_STATUS_FILE), "w", encoding="utf-8") as f:
            json.dump(status, f)
    except (OSError, TypeError, ValueError) as e:
        component.log_warning(fl_ctx, f"training status not written ({e}): {status}")


class CrossSiteModelEval(HonourTaskCheckPeriod, _CrossSiteModelEval):
    """nvflare's CrossSiteModelEval (same arguments) with ``task_check_period`` in effect."""
