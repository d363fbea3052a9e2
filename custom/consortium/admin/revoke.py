"""``consortium site revoke NAME`` (and ``--undo``): a project admin takes a hospital out of the
consortium through FLARE's admin API, as the admin console would.

FLARE's ``disable_client`` ends the site's session and refuses its registration and heartbeats
from then on (persisted in the server's ``disabled_clients.json``, across server restarts); the
aggregator of every running job reads that list and refuses the site's results from the next one
it sends (:mod:`consortium.operations.deny_list`). FLARE has no certificate revocation: the site's
certificate stays valid and the refusal is by name. FLARE's audit log records the command and the
admin who gave it. Under HE the revoked site keeps the consortium's CKKS secret key: the command
says so, and the consortium must be re-keyed before its next HE job.
"""

from __future__ import annotations

from pathlib import Path

from consortium.poc.state import PocError, PocState

HE_REKEY = ("{site} holds the consortium's CKKS secret key (startup/client_context.tenseal): it can still decrypt "
            "round sums it obtains. Re-key before the next HE job: move <workspace>/<project>/state/he_context.tenseal "
            "and he_server_context.tenseal aside, provision again and send every remaining site and the server its "
            "new kit")


def _holds_he_key(kits: Path, site: str) -> bool:
    """Whether the site's kit holds the consortium's CKKS secret context (then revoking it calls for re-keying)."""
    return (kits / site / "startup" / "client_context.tenseal").is_file()


def revoke_site(state: PocState, site: str, undo: bool = False, reason: str = "", echo=print) -> dict:
    """Disable (or, with ``undo``, enable again) ``site`` as the consortium's project admin; returns
    FLARE's answer for the site."""
    from consortium.poc import lifecycle as poc
    if site not in state.clients:
        raise PocError(f"no site {site!r} in this consortium; sites: {state.clients}")
    sess = poc.admin_session(state)
    try:
        answer = sess.enable_client(site) if undo else sess.disable_client(site)
    finally:
        sess.close()
    rows = [c for c in (answer or {}).get("clients", []) if c.get("client_name") == site]
    if not rows or "error" in rows[0]:
        raise PocError(f"FLARE did not {'enable' if undo else 'disable'} {site}: {answer!r}")
    why = f" ({reason})" if reason else ""
    if undo:
        echo(f"{site} may join the consortium again{why}; restart its kit (`consortium poc restart {site}`)")
    else:
        echo(f"{site} revoked by {state.admin}{why}: the server refuses its registration, and every running job "
             "refuses its results from the next one it sends")
        if _holds_he_key(Path(state.kits), site):
            echo("WARNING: " + HE_REKEY.format(site=site))
    return rows[0]
