"""Provisioning builder: server settings a consortium needs that FLARE reads from the server's
``startup/fed_server.json`` (its ``application.conf`` section), written before the signature
builder so they are part of the signed kit.

``client_outcome_wait_timeout``: after a job's server process ends, how long FLARE waits for
every site to report its own outcome before it finalises the job (nvflare 2.9 default 900 s).
A site that died mid-job never reports, so with the default a job that finished its rounds
without it still shows RUNNING for 15 minutes and then ends ``FINISHED:ABNORMAL``. The
consortium sets a short wait (project.yml) so such a job ends within a minute or two.
"""

from __future__ import annotations

import json
from pathlib import Path

from nvflare.lighter.spec import Builder

class ServerSettingsBuilder(Builder):
    def __init__(self, client_outcome_wait_timeout: float = 60.0) -> None:
        if isinstance(client_outcome_wait_timeout, bool) or not isinstance(client_outcome_wait_timeout, int | float) \
                or not 0 < client_outcome_wait_timeout <= 3600:
            raise ValueError(f"project.yml: ServerSettingsBuilder arg client_outcome_wait_timeout = "
                             f"{client_outcome_wait_timeout!r} must be seconds in (0, 3600]")
        self.settings = {"client_outcome_wait_timeout": float(client_outcome_wait_timeout)}

    def build(self, project, ctx) -> None:
        path = Path(ctx.get_kit_dir(project.get_server())) / "fed_server.json"
        config = json.loads(path.read_text())
        config.update(self.settings)
        path.write_text(json.dumps(config, indent=2))
