"""The one check that a POC is running, before a command talks to it."""

from __future__ import annotations

from pathlib import Path

from consortium.poc.state import STATE_FILE, PocError, PocState, running


def running_state(workspace: Path, what: str = "") -> PocState:
    """The state of the POC running in ``workspace``; PocError naming the folder and how to start one
    (``what``: the command or flag that needs it, e.g. ``--start``)."""
    workspace = Path(workspace).resolve()
    state = PocState.load(workspace / STATE_FILE)
    if state is None or not running(state):
        raise PocError(f"{what + ': ' if what else ''}no running POC in {workspace}; start one with `consortium poc up`")
    return state
