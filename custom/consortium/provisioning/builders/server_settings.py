"""Provisioning builder: server settings a consortium needs, part of the signed kit (listed before
the signature builder in project.yml).

``client_outcome_wait_timeout``: after a job's server process ends, how long FLARE waits for
every site to report its own outcome before it finalises the job (nvflare 2.9 default 900 s).
A site that died mid-job never reports, so with the default a job that finished its rounds
without it still shows RUNNING for 15 minutes. The consortium sets a short wait.

FLARE's server process reads this variable from its command line (``--set name=value``) or the
environment (``NVFLARE_CLIENT_OUTCOME_WAIT_TIMEOUT``), not from ``fed_server.json``, so the
builder adds it to the ``--set`` list of the kit's ``startup/sub_start.sh`` and records it in
``startup/consortium_server.json``, from which ``consortium poc up`` starts the server the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

from nvflare.lighter.spec import Builder

SETTINGS_FILE = "consortium_server.json"
START_LINE = "nvflare.private.fed.app.server.server_train"


class ServerSettingsBuilder(Builder):
    def __init__(self, client_outcome_wait_timeout: float = 60.0) -> None:
        if isinstance(client_outcome_wait_timeout, bool) or not isinstance(client_outcome_wait_timeout, int | float) \
                or not 0 < client_outcome_wait_timeout <= 3600:
            raise ValueError(f"project.yml: ServerSettingsBuilder arg client_outcome_wait_timeout = "
                             f"{client_outcome_wait_timeout!r} must be seconds in (0, 3600]")
        self.settings = {"client_outcome_wait_timeout": float(client_outcome_wait_timeout)}

    def build(self, project, ctx) -> None:
        startup = Path(ctx.get_kit_dir(project.get_server()))
        (startup / SETTINGS_FILE).write_text(json.dumps(self.settings, indent=2) + "\n")
        script = startup / "sub_start.sh"
        if script.is_file():
            lines = script.read_text().splitlines(keepends=True)
            extra = " ".join(f"{k}={v}" for k, v in self.settings.items())
            hits = [i for i, line in enumerate(lines) if START_LINE in line and "--set" in line]
            if len(hits) != 1:
                raise RuntimeError(f"{script}: expected one server start line with --set, found {len(hits)}")
            lines[hits[0]] = lines[hits[0]].replace("--set ", f"--set {extra} ", 1)
            script.write_text("".join(lines))


def server_settings(server_kit: Path) -> list[str]:
    """The ``name=value`` settings the builder recorded in a server kit (none for older kits)."""
    path = Path(server_kit) / "startup" / SETTINGS_FILE
    if not path.is_file():
        return []
    return [f"{k}={v}" for k, v in json.loads(path.read_text()).items()]
