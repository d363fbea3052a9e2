"""An admin's incident commands against a running POC job (:mod:`consortium.operations.incidents`):

    consortium incident freeze JOB_ID [--reason TEXT]           no new global model leaves the server
    consortium incident quarantine JOB_ID SITE [--reason TEXT]  the site's results refused from the next round
    consortium incident thaw JOB_ID [--reason TEXT]             rounds go on (a quarantine stays)

The POC's command line runs on the server's machine, so it appends the event to the control file in
the job's run folder directly; the server applies it between rounds, writes it to FLARE's job audit
trail and the round record. (Production would carry the request over FLARE's admin channel, see
docs/operations.md.) Roll back with ``consortium models rollback``.
"""

from __future__ import annotations

import time
from pathlib import Path

from consortium.operations.incidents import CONTROL_FILE, Action, IncidentEvent, append_event, state_of
from consortium.poc.state import PocError, PocState
from consortium.protocol.files import TRAINING_STATUS_FILE


def control_file(state: PocState, job_id: str) -> Path:
    run = state.server_dir() / job_id
    if not run.is_dir():
        raise PocError(f"{run}: no run folder for job {job_id} on this POC's server (is the job id right? "
                       "`consortium job submit` prints it)")
    if (run / TRAINING_STATUS_FILE).is_file():
        raise PocError(f"job {job_id} has finished training ({run / TRAINING_STATUS_FILE}); an incident control "
                       "has no effect on it: roll back with `consortium models rollback`")
    return run / CONTROL_FILE


def request(state: PocState, job_id: str, action: Action, site: str | None = None, reason: str = "",
            echo=print) -> IncidentEvent:
    """Append one control for ``job_id``; returns the event (the server applies it before its next round)."""
    if action is Action.QUARANTINE and site not in state.clients:
        raise PocError(f"no site {site!r} in this consortium; sites: {state.clients}")
    path = control_file(state, job_id)
    event = IncidentEvent(action, by=state.admin, at=time.time(), reason=reason, site=site)
    now = state_of(append_event(path, event))
    echo(f"job {job_id}: {event.line()}; applied before the next round "
         f"(frozen: {now.frozen}, quarantined: {sorted(now.quarantined) or 'none'})")
    return event
