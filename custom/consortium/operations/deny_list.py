"""The consortium's deny list: sites revoked by the project admin.

FLARE keeps it: the admin command ``disable_client NAME`` (``consortium site revoke``) adds the
name to ``<server workspace>/disabled_clients.json`` (``{"disabled_clients": [...]}``), after
which the server refuses that name's registration and heartbeats, across server restarts. FLARE
has no certificate revocation (no CRL, no OCSP): the site's certificate stays valid and the
refusal is by name, which also refuses a re-issued kit of the same name.

What FLARE does not do is stop a job that is already running at the site; the server's
aggregator reads this list before it takes a result (:class:`DenyList`) and refuses results from a
revoked site with the reason. An unreadable list refuses every result (fail closed): a round
then stops with the reason rather than combining an update the admin may have revoked.

No nvflare import: the file format is FLARE's, read here as plain JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

FILE = "disabled_clients.json"


def read_deny_list(path: Path) -> frozenset[str]:
    """The revoked site names in FLARE's file; none when it does not exist; ValueError naming the
    file and field when it cannot be read."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return frozenset()
    except OSError as e:
        raise ValueError(f"{path}: cannot read the deny list ({e})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e})") from None
    names = data.get("disabled_clients") if isinstance(data, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{path}: field 'disabled_clients' = {names!r} must be a list of site names")
    return frozenset(names)


class DenyList:
    """FLARE's deny list in a server workspace, re-read when the file changes."""

    def __init__(self, server_workspace: Path) -> None:
        self.path = Path(server_workspace) / FILE
        self._stamp: tuple | None = None
        self._names: frozenset[str] = frozenset()
        self._error: str | None = None

    def refusal(self, site: str) -> str | None:
        """Why a result from ``site`` must be refused, or None."""
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        except OSError as e:
            return f"{site}: the deny list {self.path} cannot be read ({e}); result refused (fail closed)"
        if stamp != self._stamp:
            try:
                self._names, self._error = read_deny_list(self.path), None
            except ValueError as e:
                self._names, self._error = frozenset(), str(e)
            self._stamp = stamp
        if self._error is not None:
            return f"{site}: {self._error}; result refused (fail closed)"
        if site in self._names:
            return f"{site} revoked by the consortium's admin (deny list {self.path.name}); result refused"
        return None
