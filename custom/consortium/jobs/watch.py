"""Telling the truth quickly about a running POC job: which site stopped answering, and where the
logs of a failed job are.

FLARE notices a dead site only after ``heart_beat_timeout`` (600 s in our jobs) and says nothing to
the submitter. On the POC every site is a process of this machine, so :class:`SiteWatch` looks at
them directly: a site's FLARE client that is no longer running, or the site's job process (the
one whose command line names the site's kit folder and the job id) that was seen and is gone.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

from consortium.poc.state import PocState, alive

ERROR_LINE = re.compile(r" - ERROR - |Traceback \(most recent call last\)|Error: ")


@dataclass(frozen=True)
class SiteLoss:
    site: str
    what: str

    def __str__(self) -> str:
        return f"site {self.site} stopped answering: {self.what}"


class SiteWatch:
    def __init__(self, state: PocState, job_id: str, interval: float = 1.0, settle: float = 5.0) -> None:
        """``settle``: how long a site's job process must be gone, while the server's job process
        still runs, before it counts as lost (at the end of a job every job process exits)."""
        self.state = state
        self.job_id = job_id
        self.interval = interval  # the process table is read at most this often
        self.settle = settle
        self._next = 0.0
        self.job_procs: dict[str, psutil.Process] = {}
        self.gone_since: dict[str, float] = {}
        self.lost: dict[str, SiteLoss] = {}

    def job_processes(self) -> dict[str, psutil.Process]:
        dirs = {site: str(Path(self.state.kits) / site) for site in [*self.state.clients, self.state.server]}
        found = {}
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmdline = proc.info.get("cmdline") or []
            if self.job_id not in cmdline:
                continue
            for site, folder in dirs.items():
                if folder in cmdline:
                    found[site] = proc
        return found

    def check(self) -> list[SiteLoss]:
        """Sites lost since the last call (each reported once)."""
        if time.monotonic() < self._next:
            return []
        self._next = time.monotonic() + self.interval
        now, new = time.monotonic(), []
        for site, proc in self.job_processes().items():
            self.job_procs.setdefault(site, proc)
        server_job = self.job_procs.get(self.state.server)
        job_running = server_job is None or _running(server_job)
        for p in self.state.procs:
            if p.site not in self.state.clients or p.site in self.lost:
                continue
            if alive(p) is None:
                loss = SiteLoss(p.site, f"its FLARE client (pid {p.pid}) is no longer running")
            elif p.site in self.job_procs and not _running(self.job_procs[p.site]):
                since = self.gone_since.setdefault(p.site, now)
                if not job_running or now - since < self.settle:
                    continue  # the job may be ending: every job process exits then
                why = site_reason(Path(self.state.kits) / p.site / self.job_id / "log.txt")
                loss = SiteLoss(p.site, f"its process for job {self.job_id} (pid {self.job_procs[p.site].pid}) exited"
                                        + (f"; its log says: {why}" if why else ""))
            else:
                continue
            self.lost[p.site] = loss
            new.append(loss)
        return new

    def remaining(self) -> list[str]:
        return [s for s in self.state.clients if s not in self.lost]


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def site_reason(log: Path) -> str | None:
    """The first error a site's job log gives, without FLARE's time and context prefix (e.g. the
    audit trail's or the DP filter's reason for stopping the job); None without one."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if " - ERROR - " in line:
            message = line.split(" - ERROR - ", 1)[1]
            if message.startswith("[") and "]: " in message:
                message = message.split("]: ", 1)[1]
            return message.strip()[:300]
    return None


def job_logs(state: PocState, job_id: str, result: Path | None = None) -> list[Path]:
    """The log files of ``job_id`` that exist now: the server's (in its run folder while the job
    runs, in the downloaded result after) and each site's."""
    candidates = [state.server_dir() / job_id / "log.txt"]
    if result is not None:
        candidates.append(result / "workspace" / "log.txt")
    candidates += [Path(state.kits) / site / job_id / "log.txt" for site in state.clients]
    return [p for p in candidates if p.is_file()]


def first_errors(logs: Iterable[Path], per_file: int = 3) -> list[str]:
    """The first error lines of each log, as ``<file>: <line>``."""
    out = []
    for log in logs:
        try:
            lines = [line.rstrip() for line in log.read_text(errors="replace").splitlines() if ERROR_LINE.search(line)]
        except OSError:
            continue
        out += [f"{log}: {line[:300]}" for line in lines[:per_file]]
    return out
