"""`consortium provision`: production startup kits from project.yml."""

from __future__ import annotations

from pathlib import Path

from consortium.cli import options
from consortium.provisioning.project import Project

EXAMPLE = "  consortium provision --output /srv/consortium-kits --server-storage /var/lib/nvflare/heart"


def add_parser(sub) -> None:
    p = options.group(sub, "provision", "production startup kits (TLS certificates, roles, site policies)", EXAMPLE)
    options.project(p)
    p.add_argument("--output", type=Path, required=True, help="folder for the kits (a provisioning workspace)")
    p.add_argument("--server-storage", type=Path, default=None,
                   help="absolute folder on the server host for job and snapshot storage (default: /var/lib/nvflare/<project>)")


def run(args) -> int:
    from consortium.provisioning.project import default_server_storage
    from consortium.provisioning.provision import provision

    project = Project.load(args.project)
    storage = args.server_storage or default_server_storage(project)
    kits = provision(project, args.output.resolve(), poc=False, server_storage=storage)
    print(f"startup kits: {kits}\nthe server keeps job and snapshot storage in {storage} on its host")
    return 0
