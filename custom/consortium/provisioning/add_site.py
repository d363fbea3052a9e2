"""``consortium site add NAME --org ORG``: the project admin adds a hospital to a provisioned
consortium without touching any existing kit.

The consortium as provisioned (``<WS>/project.yml`` and ``<WS>/<project>/state/``: root CA, every
certificate, the CKKS keys) is provisioned again, with the new site, into a scratch folder seeded
with a copy of that state, by the same :func:`~consortium.provisioning.provision.provision` (same builders, site
policies, HE contexts, signatures). Only the new site's kit is taken from it, into the
consortium's kit folder; the state's ``cert.json`` gains the new certificate (so a later
re-provisioning keeps it) and ``<WS>/project.yml`` the new participant, from which ``consortium
site approve`` and the POC read site names. Existing kits are never written.

In a running POC (``consortium poc up``), ``--start`` (:func:`consortium.poc.join.start_in_poc`) records the site in the POC's state
(whose site list ``consortium job submit`` checks deploy maps against), makes its imaging data from
its scanner profile when ``--profiles`` has one, starts it, and waits until the server lists it.
Production: send the kit to the hospital (or use ``consortium site request`` / ``site approve`` /
``site package``, in which the key never leaves the hospital) and add the site to provisioning/project.yml.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from pathlib import Path

import yaml

from consortium.fileio import atomic_write, path_under, restrict_secrets
from consortium.names import check_name
from consortium.provisioning.project import ConfigurationError, Project
from consortium.provisioning.provision import provision


def check_new_site(name: str, org: str, consortium: Project) -> None:
    """ConfigurationError naming the file and field when ``name``/``org`` cannot be a new site
    (FLARE's name rules, :mod:`consortium.names`)."""
    check_name("site", name, "site add: NAME")
    check_name("org", org, "site add: --org")
    taken = {p.get("name"): p.get("type") for p in consortium.config["participants"]}
    if name in taken:
        raise ConfigurationError(f"{consortium.path}: field 'participants' already has {name!r} (a {taken[name]})")


def add_site(name: str, org: str, workspace: Path, policies: Project) -> Path:
    """A kit for a new site ``name`` of the consortium provisioned in ``workspace``; returns it.
    ``policies`` gives the site policy templates (its ``site_policies/`` folder)."""
    workspace = workspace.resolve()
    consortium = Project.load(workspace / "project.yml")
    check_new_site(name, org, consortium)
    state = workspace / consortium.name / "state"
    if not (state / "cert.json").is_file():
        raise ConfigurationError(f"{state / 'cert.json'}: missing: {workspace} holds no provisioned consortium")
    prods = sorted((workspace / consortium.name).glob("prod_*"))
    if not prods:
        raise ConfigurationError(f"{workspace / consortium.name}: no prod_* kit folder")
    target = path_under(prods[-1], name)
    if target.exists():
        raise ConfigurationError(f"{target} exists; refusing to overwrite a kit")
    config = copy.deepcopy(consortium.config)
    config["participants"].append({"name": name, "type": "client", "org": org})
    with tempfile.TemporaryDirectory(prefix="consortium-add-site-") as tmp:
        scratch_state = Path(tmp) / consortium.name / "state"
        shutil.copytree(state, scratch_state)
        kits = provision(Project(policies.path, config), Path(tmp), poc=False)
        shutil.copytree(kits / name, target)
        restrict_secrets(target)
        atomic_write(state / "cert.json", (scratch_state / "cert.json").read_bytes())  # 0600, as mkstemp makes it
    (workspace / "project.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return target
