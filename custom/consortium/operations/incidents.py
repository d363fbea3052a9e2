"""An admin's incident controls for one running job: freeze the global model's distribution,
quarantine a site, thaw. No FLARE import.

The controls are an append-only list of events in ``incident_control.json`` in the job's run
folder on the server (:data:`CONTROL_FILE`). The admin's command appends an event (written to a
temporary file and renamed, so the server never reads half a file); the server's workflow reads
the file between rounds, audits each event it has not seen yet, and applies the state the events
add up to:

* ``freeze``: no new global model is sent; the round loop waits before the next round's broadcast
  (the sites keep the last model they received) until a ``thaw``.
* ``quarantine SITE``: from the next round the site's results are refused, with the event's reason
  in the round record, for the rest of the job.
* ``thaw``: rounds go on (a quarantine stays).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

from consortium.fileio import atomic_write

CONTROL_FILE = "incident_control.json"


class Action(StrEnum):
    FREEZE = "freeze"
    THAW = "thaw"
    QUARANTINE = "quarantine"


@dataclass(frozen=True)
class IncidentEvent:
    action: Action
    by: str  # who asked (the admin's name)
    at: float  # when (epoch seconds)
    reason: str = ""
    site: str | None = None  # quarantine only

    def __post_init__(self) -> None:
        object.__setattr__(self, "action", Action(self.action))
        if (self.action is Action.QUARANTINE) != bool(self.site):
            raise ValueError(f"incident event {self.action}: site {self.site!r} (a quarantine names one site, nothing else does)")

    def line(self) -> str:
        what = f"{self.action} {self.site}" if self.site else str(self.action)
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.at))
        return f"{what} by {self.by} at {when} UTC" + (f": {self.reason}" if self.reason else "")


@dataclass(frozen=True)
class IncidentState:
    frozen: bool
    quarantined: dict[str, str]  # site -> the quarantine event's line


def state_of(events: list[IncidentEvent]) -> IncidentState:
    frozen, quarantined = False, {}
    for e in events:
        if e.action is Action.FREEZE:
            frozen = True
        elif e.action is Action.THAW:
            frozen = False
        else:
            quarantined.setdefault(e.site, e.line())
    return IncidentState(frozen, quarantined)


def read_events(path: Path | str) -> list[IncidentEvent]:
    """The events in ``path`` (none when the file does not exist); ValueError for a damaged file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    try:
        return [IncidentEvent(**e) for e in json.loads(text)["events"]]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: unreadable incident controls ({e})") from e


def append_event(path: Path | str, event: IncidentEvent) -> list[IncidentEvent]:
    """Add ``event`` to the controls in ``path``, atomically; returns every event."""
    path = Path(path)
    events = [*read_events(path), event]
    atomic_write(path, json.dumps({"events": [asdict(e) for e in events]}, indent=1) + "\n")
    return events
