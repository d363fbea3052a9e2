"""The POC's record of its processes and how they are stopped: PIDs with their start times (so a
recycled PID is never signalled), their descendants, and job processes found by their kit path.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

STATE_FILE = "consortium-poc.json"


class PocError(RuntimeError):
    """A POC that cannot be started, reached or stopped; the message says what to do."""


@dataclass
class Proc:
    site: str
    pid: int
    create_time: float


@dataclass
class PocState:
    workspace: str
    kits: str
    project_name: str
    port: int
    admin: str
    clients: list[str]
    procs: list[Proc]
    monitoring: dict | None = None  # `up --monitoring`: {"prometheus": Proc fields, "port", "targets", "folder"}
    server: str = "server"  # the project's server name: its kit folder, and its name among the processes

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> PocState | None:
        if not path.is_file():
            return None
        try:
            d = json.loads(path.read_text())
            d["procs"] = [Proc(**p) for p in d["procs"]]
            return cls(**d)
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise PocError(f"{path}: unreadable POC state ({e}); remove the folder {path.parent} to start afresh") from e

    @property
    def admin_kit(self) -> Path:
        return Path(self.kits) / self.admin

    def server_dir(self) -> Path:
        return Path(self.kits) / self.server

    def prometheus(self) -> Proc | None:
        """The POC's Prometheus process, when ``up --monitoring`` started one."""
        return Proc(**self.monitoring["prometheus"]) if self.monitoring else None


def alive(p: Proc) -> psutil.Process | None:
    try:
        proc = psutil.Process(p.pid)
        if abs(proc.create_time() - p.create_time) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE:
            return proc
    except psutil.Error:
        pass
    return None


def running(state: PocState) -> list[Proc]:
    return [p for p in state.procs if alive(p)]


def process_tree(procs: list[Proc], kits: str | None = None) -> list[psutil.Process]:
    """The recorded processes, their descendants, and (with ``kits``) any process whose command
    line names a site folder of these kits: FLARE starts job processes in their own session, so a
    job process whose parent died is found this way."""
    found: dict[int, psutil.Process] = {}
    for p in procs:
        proc = alive(p)
        if proc is not None:
            found[proc.pid] = proc
            try:
                found.update((c.pid, c) for c in proc.children(recursive=True))
            except psutil.Error:
                pass
    if kits:
        marker = str(Path(kits)) + os.sep
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmdline = proc.info.get("cmdline") or []
            if proc.pid != os.getpid() and any(arg.startswith(marker) for arg in cmdline):
                found.setdefault(proc.pid, proc)
    return list(found.values())


def terminate(procs: list[psutil.Process], grace: float) -> None:
    """SIGTERM each process, wait ``grace`` seconds, SIGKILL what is left."""
    for proc in procs:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    _, left = psutil.wait_procs(procs, timeout=grace)
    for proc in left:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(left, timeout=5)


def stop_processes(state: PocState, grace: float = 20.0) -> list[int]:
    """Stop every process of the POC (and its job processes, and its Prometheus) by PID: SIGTERM, then SIGKILL."""
    tree = process_tree(state.procs, state.kits or None)
    prometheus = alive(state.prometheus()) if state.prometheus() is not None else None
    if prometheus is not None:
        tree.append(prometheus)
    terminate(tree, grace)
    return [p.pid for p in tree]
