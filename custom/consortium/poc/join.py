"""A site just added (:func:`consortium.provisioning.add_site.add_site`) joins the running POC."""

from __future__ import annotations

import time
from pathlib import Path

from consortium.poc.session import running_state
from consortium.poc.state import STATE_FILE, PocError, alive
from consortium.provisioning.project import Project

JOIN_TIMEOUT_S = 60.0


def start_in_poc(name: str, workspace: Path, profiles: Path | None = None, echo=print,
                 timeout: float = JOIN_TIMEOUT_S):
    """Record ``name`` (already added) in the running POC of ``workspace``, make its imaging data
    from its scanner profile when ``profiles`` has one, start it, and wait until the server lists
    it; returns the POC state."""
    from consortium.data.imaging import load_profiles, write_site_data
    from consortium.poc import lifecycle as poc

    workspace = Path(workspace).resolve()
    state = running_state(workspace)
    kit = Path(state.kits) / name
    if profiles is not None and Path(profiles).is_file() and name in (found := load_profiles(profiles)):
        write_site_data(kit / "data" / "imaging", found[name])
        echo(f"{name}: imaging data generated at the site from {profiles}")
    if name not in state.clients:
        state.clients.append(name)
        state.save(workspace / STATE_FILE)
    poc.launch_site(state, name, Project.load(workspace / "project.yml"))
    entry = next(p for p in state.procs if p.site == name)
    sess = poc.admin_session(state)
    try:
        deadline = time.monotonic() + timeout
        while name not in poc.connected_clients(sess):
            if alive(entry) is None:
                raise PocError(f"{name} exited while joining; see {kit / 'console.log'}")
            if time.monotonic() > deadline:
                raise PocError(f"{name} did not join within {timeout:.0f} s; see {kit / 'console.log'}")
            time.sleep(0.5)
    finally:
        sess.close()
    echo(f"{name} joined the consortium (pid {entry.pid})")
    return state
