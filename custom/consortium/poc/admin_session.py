"""The project admin's session with a running POC through FLARE's admin API (the admin console's
path), and the wait until every site has connected."""

from __future__ import annotations

import contextlib
import io
import time

from consortium.poc.state import PocError, PocState, alive

READY_TIMEOUT_S = 180.0


def admin_session(state: PocState, timeout: float = 30.0):
    """An admin API session as the project admin (the same path as the admin console)."""
    from nvflare.fuel.flare_api.flare_api import new_secure_session

    deadline = time.monotonic() + timeout
    while True:
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                return new_secure_session(state.admin, str(state.admin_kit), timeout=10.0)  # quiet "Connecting to FLARE ..."
        except Exception as e:  # the server may still be coming up
            if time.monotonic() > deadline:
                raise PocError(f"cannot log in to the FLARE server on port {state.port} as {state.admin}: {e}") from e
            time.sleep(1.0)


def connected_clients(sess) -> list[str]:
    return sorted(c.name for c in sess.get_system_info().client_info)


def wait_ready(state: PocState, timeout: float = READY_TIMEOUT_S, echo=print) -> None:
    sess = admin_session(state)
    try:
        deadline = time.monotonic() + timeout
        while True:
            dead = [p.site for p in state.procs if not alive(p)]
            if dead:
                raise PocError(f"processes of {dead} exited during start-up; see their console.log under {state.kits}")
            names = connected_clients(sess)
            if set(state.clients) <= set(names):
                echo(f"consortium ready: server on 127.0.0.1:{state.port}, sites {names}")
                return
            if time.monotonic() > deadline:
                raise PocError(f"only {names} of {state.clients} connected within {timeout:.0f} s")
            time.sleep(0.5)
    finally:
        sess.close()
