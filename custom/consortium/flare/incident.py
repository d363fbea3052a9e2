"""The server side of an admin's incident controls (:mod:`consortium.operations.incidents`), used by
:class:`consortium.flare.workflows.scatter.ScatterAndGather` between rounds.

:class:`IncidentGate` reads the job's control file, writes every event it has not seen yet to
FLARE's job audit trail (``audit.log`` in the run folder) and the log, announces the state with
:data:`INCIDENT_EVENT` (the dict ``{"frozen", "quarantined"}`` in :data:`INCIDENT_PROP`; the metrics
exporter listens), and holds the round loop while the job is frozen. A damaged control file is an
error in the log and changes nothing (the last good state stays in force).
"""

from __future__ import annotations

import os
import time
from typing import Protocol

from nvflare.apis.fl_context import FLContext
from nvflare.apis.utils.fl_context_utils import add_job_audit_event

from consortium.operations.incidents import CONTROL_FILE, IncidentEvent, IncidentState, read_events, state_of

INCIDENT_EVENT = "consortium.incident"
INCIDENT_PROP = "consortium.incident"
POLL_S = 0.5


class GateHost(Protocol):
    """What the gate uses of the workflow that holds it (any FLARE ``FLComponent``)."""

    def log_error(self, fl_ctx: FLContext, msg: str) -> None: ...

    def log_warning(self, fl_ctx: FLContext, msg: str) -> None: ...

    def fire_event(self, event_type: str, fl_ctx: FLContext) -> None: ...


class IncidentGate:
    def __init__(self, component: GateHost) -> None:
        self.component = component
        self.seen = 0
        self.state = IncidentState(False, {})
        self.applied: list[str] = []  # event lines taken into effect since the last round record

    def _path(self, fl_ctx: FLContext) -> str:
        return os.path.join(fl_ctx.get_engine().get_workspace().get_run_dir(fl_ctx.get_job_id()), CONTROL_FILE)

    def poll(self, fl_ctx: FLContext, round_number: int | None = None) -> IncidentState:
        """The controls in force; new ones are logged, audited and announced (as before ``round_number``)."""
        try:
            events = read_events(self._path(fl_ctx))
        except (OSError, ValueError) as e:
            self.component.log_error(fl_ctx, f"incident controls not applied: {e}")
            return self.state
        if len(events) > self.seen:
            self._apply(events[self.seen:], fl_ctx, round_number)
            self.seen = len(events)
            self.state = state_of(events)
            fl_ctx.set_prop(INCIDENT_PROP, {"frozen": self.state.frozen, "quarantined": dict(self.state.quarantined)},
                            private=True, sticky=False)
            self.component.fire_event(INCIDENT_EVENT, fl_ctx)
        return self.state

    def _apply(self, new: list[IncidentEvent], fl_ctx: FLContext, round_number: int | None) -> None:
        for event in new:
            line = f"{event.line()} (before round {round_number})"
            self.applied.append(line)
            self.component.log_warning(fl_ctx, f"INCIDENT: {line}")
            add_job_audit_event(fl_ctx, msg=f"consortium incident: {line}")

    def hold_while_frozen(self, fl_ctx: FLContext, abort_signal, round_number: int | None = None) -> IncidentState:
        """Return when the job is not frozen (at once when it never was) or is aborted;
        ``round_number``: the round about to be broadcast (named in the controls' lines)."""
        state = self.poll(fl_ctx, round_number)
        if state.frozen:
            self.component.log_warning(fl_ctx, "FROZEN: no new global model is sent until `consortium incident thaw`")
        while state.frozen and not (abort_signal is not None and abort_signal.triggered):
            time.sleep(POLL_S)
            state = self.poll(fl_ctx, round_number)
        return state

    def take_applied(self) -> list[str]:
        applied, self.applied = self.applied, []
        return applied
