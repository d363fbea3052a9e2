"""A real FLARE consortium on this machine: provision from project.yml, start the server and every
site as their own processes on loopback, stop them all again by PID.

State lives in ``<workspace>/consortium-poc.json`` (PIDs with their start times, so a recycled
PID is never signalled). A running consortium is never silently reused by ``up`` and a stale one
(state file, processes gone) is explained and cleaned.

With ``monitoring`` (``consortium poc up --monitoring``) Debian's Prometheus is started too
(:mod:`consortium.poc.prometheus`), scraping the jobs' metrics exporter; ``down`` stops it by PID.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import psutil

from consortium.poc.admin_session import READY_TIMEOUT_S, admin_session, connected_clients, wait_ready  # noqa: F401
from consortium.poc.site_data import DEFAULT_PROFILES, prepare_imaging
from consortium.poc.state import (  # noqa: F401 - part of this module's interface
    STATE_FILE,
    PocError,
    PocState,
    Proc,
    alive,
    process_tree,
    running,
    stop_processes,
    terminate,
)
from consortium.poc.workspace import MARKER_FILE, clear_workspace, keep_console_downloads
from consortium.provisioning.project import Project
from consortium.provisioning.provision import provision

DOWNLOADS_KEPT = Path("results") / "console-downloads"  # where `up` moves the console's earlier downloads


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PocError(f"the FLARE server exited with code {proc.returncode} while starting; see {log}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise PocError(f"the FLARE server did not open port {port} within {timeout:.0f} s; see {log}")


def _start(site_dir: Path, module: str, config: str, settings: list[str]) -> tuple[subprocess.Popen, Path]:
    """Start one FLARE process as its startup kit's sub_start.sh would (without the restart loop)."""
    log = site_dir / "console.log"
    cmd = [sys.executable, "-u", "-m", module, "-m", str(site_dir), "-s", config,
           "--set", "secure_train=true", "config_folder=config", *settings]
    env = dict(os.environ, MALLOC_ARENA_MAX="4")
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=site_dir, env=env, start_new_session=True)
    return proc, log


def up(project: Project, workspace: Path, port: int | None = None, echo=print,
       profiles: Path | None = DEFAULT_PROFILES, keep_downloads: Path = DOWNLOADS_KEPT, monitoring: bool = False,
       metrics_port: int | None = None, prometheus_port: int | None = None) -> PocState:
    """Provision a fresh POC into ``workspace``, generate each site's imaging data from its scanner
    profile (``profiles``, skipped when None or absent), and start the server and all sites.
    What the admin console downloaded into the previous POC's kits is moved to ``keep_downloads``
    first. With ``monitoring``, Prometheus on 127.0.0.1:``prometheus_port`` scrapes the jobs'
    exporter on ``metrics_port`` (checked before anything starts)."""
    if monitoring:
        from consortium.poc.prometheus import DEFAULT_EXPORTER_PORT, DEFAULT_PROMETHEUS_PORT, prometheus_binary

        prometheus_binary()  # installed? (else the error says how)
        metrics_port = metrics_port or DEFAULT_EXPORTER_PORT
        prometheus_port = prometheus_port or DEFAULT_PROMETHEUS_PORT
        if not port_free(prometheus_port):
            raise PocError(f"port {prometheus_port} is in use; choose another with `--prometheus-port N`")
    workspace = workspace.resolve()
    state_path = workspace / STATE_FILE
    old = PocState.load(state_path)
    if old is not None:
        alive = running(old)
        if alive and len(alive) < len(old.procs):
            gone = sorted(p.site for p in old.procs if p not in alive)
            raise PocError(f"a POC in {workspace} is only partly running: {sorted(p.site for p in alive)} running, "
                           f"{gone} stopped; stop it with `consortium poc down` and start again")
        if alive:
            raise PocError(f"a POC is already running from {workspace} (pids {[p.pid for p in alive]}); "
                           "use it, or stop it first with `consortium poc down`")
        echo(f"stale POC state in {workspace} (its processes are gone); preparing a fresh consortium")
        _stop_monitoring(old, echo)
    if port is not None:
        project = project.with_port(port)
    if not port_free(project.port):
        raise PocError(f"port {project.port} on this machine is in use (another FLARE server or POC?); "
                       f"stop it or choose another with `consortium poc up --port N`")
    keep_console_downloads(workspace, keep_downloads, echo)
    clear_workspace(workspace)
    workspace.mkdir(parents=True)
    (workspace / MARKER_FILE).write_text("made by `consortium poc up`; `poc up` may delete and remake this folder\n")
    echo(f"provisioning {project.name} from {project.path} into {workspace}")
    kits = provision(project, workspace, poc=True)
    if profiles is not None and Path(profiles).is_file():
        prepare_imaging(Path(profiles), {c: kits / c for c in project.clients}, echo=echo)
    server = project.server
    state = PocState(str(workspace), str(kits), project.name, project.port, project.project_admin,
                     project.clients, [], server=server["name"])
    try:
        proc, log = launch_site(state, server["name"], project)
        _wait_port(project.port, proc, log, 60)
        for client in project.clients:
            launch_site(state, client, project)
        wait_ready(state, echo=echo)
        if monitoring:
            _start_monitoring(state, metrics_port, prometheus_port, echo)
    except BaseException:
        echo("start-up failed; stopping what was started")
        stop_processes(state)
        raise
    return state


def _start_monitoring(state: PocState, metrics_port: int, prometheus_port: int, echo=print) -> None:
    from consortium.poc.prometheus import DASHBOARD, start_prometheus

    targets = [f"127.0.0.1:{metrics_port}"]
    folder = Path(state.workspace) / "prometheus"
    entry = start_prometheus(folder, targets, prometheus_port)
    state.monitoring = {"prometheus": asdict(entry), "port": prometheus_port, "targets": targets, "folder": str(folder)}
    state.save(Path(state.workspace) / STATE_FILE)
    echo(f"Prometheus on http://127.0.0.1:{prometheus_port} (pid {entry.pid}) scrapes {targets}; "
         f"Grafana dashboard: {DASHBOARD}")


def launch_site(state: PocState, site: str, project: Project) -> tuple[subprocess.Popen, Path]:
    """Start ``site`` (the server or a client) from its kit and record its PID at once (an
    interrupted start-up still knows what to stop)."""
    org = next(p.get("org", "") for p in project.config["participants"] if p["name"] == site)
    if site == project.server["name"]:
        from consortium.provisioning.builders.server_settings import server_settings

        module, config = "nvflare.private.fed.app.server.server_train", "fed_server.json"
        settings = [f"org={org}", *server_settings(Path(state.kits) / site)]
    else:
        module, config, settings = "nvflare.private.fed.app.client.client_train", "fed_client.json", [f"uid={site}", f"org={org}"]
    proc, log = _start(Path(state.kits) / site, module, config, settings)
    state.procs = [p for p in state.procs if p.site != site] + [Proc(site, proc.pid, psutil.Process(proc.pid).create_time())]
    state.save(Path(state.workspace) / STATE_FILE)
    return proc, log


def kill_site(workspace: Path, site: str, echo=print) -> list[int]:
    """Stop one site of a running POC (the server or a hospital) with all its processes, job
    processes included, as a crash would: SIGKILL, no goodbye to the server."""
    state = _state(workspace)
    entry = next((p for p in state.procs if p.site == site), None)
    if entry is None:
        raise PocError(f"no site {site!r} in the POC in {workspace}; sites: {[p.site for p in state.procs]}")
    folder = str(Path(state.kits) / site)
    tree = {p.pid: p for p in process_tree([entry])}
    for proc in psutil.process_iter(["pid", "cmdline"]):  # job processes run in their own session
        if proc.pid != os.getpid() and any(a == folder or a.startswith(folder + os.sep) for a in proc.info["cmdline"] or []):
            tree.setdefault(proc.pid, proc)
    tree = list(tree.values())
    for proc in tree:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(tree, timeout=10)
    pids = sorted(p.pid for p in tree)
    echo(f"killed {site}: processes {pids}")
    return pids


def restart_site(workspace: Path, site: str, echo=print, wait: bool = True) -> PocState:
    """Start again a POC site (or the server) whose processes are gone, from its kit, with the
    same settings ``up`` used; waits (unless ``wait`` is false) until the server lists every site again."""
    state = _state(workspace)
    entry = next((p for p in state.procs if p.site == site), None)
    if entry is None:
        raise PocError(f"no site {site!r} in the POC in {workspace}; sites: {[p.site for p in state.procs]}")
    if alive(entry) is not None:
        raise PocError(f"{site} is running (pid {entry.pid}); stop it first")
    project = Project.load(Path(state.workspace) / "project.yml")
    proc, log = launch_site(state, site, project)
    if site == project.server["name"]:
        _wait_port(state.port, proc, log, 60)
    if wait:
        wait_ready(state, echo=echo)
    return state


def _state(workspace: Path) -> PocState:
    state = PocState.load(workspace.resolve() / STATE_FILE)
    if state is None:
        raise PocError(f"no POC running from {workspace}; start one with `consortium poc up`")
    return state


def _existing(workspace: Path, what: str) -> Path:
    """``workspace`` resolved; PocError naming it when there is no such folder (a typo, not an idle POC)."""
    if not Path(workspace).is_dir():
        raise PocError(f"{workspace}: no such POC workspace (no folder there); {what}")
    return Path(workspace).resolve()


def status(workspace: Path) -> dict:
    state = PocState.load(_existing(workspace, "`consortium poc up --workspace DIR` makes one") / STATE_FILE)
    if state is None:
        return {"state": "absent", "workspace": str(workspace)}
    alive = running(state)
    if not alive:
        return {"state": "stale", "workspace": str(workspace), "detail": "state file present, no process running"}
    stopped = [p for p in state.procs if p not in alive]
    result = {"state": "running" if not stopped else "degraded", "workspace": str(workspace),
              "port": state.port, "processes": {p.site: p.pid for p in alive},
              "missing": [p.site for p in stopped],
              "stopped": [f"site {p.site} stopped (process {p.pid} is no longer running)" for p in stopped]}
    if state.monitoring:
        result["prometheus"] = {"url": f"http://127.0.0.1:{state.monitoring['port']}",
                                "running": alive(state.prometheus()) is not None, "scrapes": state.monitoring["targets"]}
    if any(p.site not in state.clients for p in stopped):
        result["admin"] = "the server is not running"
        return result
    try:
        sess = admin_session(state, timeout=5)
        try:  # FLARE keeps listing a dead site until its heartbeat times out: only running sites are connected
            running_sites = {p.site for p in alive}
            result["connected_clients"] = [c for c in connected_clients(sess) if c in running_sites]
        finally:
            sess.close()
    except PocError as e:
        result["admin"] = str(e)
    return result


def down(workspace: Path, echo=print) -> None:
    """Shut the consortium down through the admin API, then make sure every process is gone."""
    state_path = _existing(workspace, "nothing stopped") / STATE_FILE
    state = PocState.load(state_path)
    if state is None:
        echo(f"no POC state in {workspace}; nothing to stop")
        return
    _stop_monitoring(state, echo)
    tree = process_tree(state.procs, state.kits)
    if tree:
        try:
            sess = admin_session(state, timeout=5)
            with contextlib.redirect_stdout(io.StringIO()):  # the session reconnects to a server going down
                try:
                    sess.shutdown("all")
                finally:
                    sess.close()
        except Exception as e:  # fall through to signals
            echo(f"admin shutdown failed ({e}); stopping processes by PID")
        _, left = psutil.wait_procs(tree, timeout=15)
        terminate(left, grace=5)
        survivors = [p.pid for p in process_tree(state.procs, state.kits)]
        if survivors:
            raise PocError(f"processes {survivors} of the POC in {workspace} did not stop; state kept in {state_path}")
        echo(f"stopped {len(tree)} processes ({sorted(p.pid for p in tree)})")
    state_path.unlink()


def _stop_monitoring(state: PocState, echo=print) -> None:
    if state.prometheus() is None:
        return
    from consortium.poc.prometheus import stop_prometheus

    if stop_prometheus(state.prometheus()):
        echo(f"stopped Prometheus (pid {state.prometheus().pid})")
