"""A provisioning builder for the POC: the server listens on loopback only.

FLARE binds its FL and admin listeners to every interface unless the service target in the
server's ``fed_server.json`` names a loopback host; its provisioner writes ``<server name>:<port>``.
On a workstation the POC must not be reachable from the network, so this builder (run before the
signature builder) rewrites the target to ``localhost:<port>``, which FLARE binds as 127.0.0.1.
Production kits are not touched: they bind where project.yml says.
"""

from __future__ import annotations

import json
from pathlib import Path

from nvflare.lighter.spec import Builder

LOOPBACK_HOST = "localhost"


class LoopbackServerBuilder(Builder):
    def build(self, project, ctx) -> None:
        server = project.get_server()
        path = Path(ctx.get_kit_dir(server)) / "fed_server.json"
        config = json.loads(path.read_text())
        for entry in config.get("servers", []):
            _, _, port = entry["service"]["target"].rpartition(":")
            entry["service"]["target"] = f"{LOOPBACK_HOST}:{port}"
        path.write_text(json.dumps(config, indent=2))
