"""``consortium add-site NAME --org ORG``: the project admin adds a hospital to a provisioned
consortium without touching any existing kit.

The consortium as provisioned (``<WS>/project.yml`` and ``<WS>/<project>/state/``: root CA, every
certificate, the CKKS keys) is provisioned again, with the new site, into a scratch folder seeded
with a copy of that state, by the same :func:`~consortium.provisioning.provision.provision` (same builders, site
policies, HE contexts, signatures). Only the new site's kit is taken from it, into the
consortium's kit folder; the state's ``cert.json`` gains the new certificate (so a later
re-provisioning keeps it) and ``<WS>/project.yml`` the new participant, from which ``consortium
approve`` and the POC read site names. Existing kits are never written.

In a running POC (``consortium poc up``), ``--start`` also records the site in the POC's state
(whose site list ``consortium submit`` checks deploy maps against), makes its imaging data from
its scanner profile when ``--profiles`` has one, starts it, and waits until the server lists it.
Production: send the kit to the hospital (or use ``consortium site request`` / ``approve`` /
``package``, in which the key never leaves the hospital) and add the site to provisioning/project.yml.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import tempfile
import time
from pathlib import Path

import yaml

from consortium.defaults import default_path
from consortium.fileio import atomic_write, path_under, restrict_secrets
from consortium.names import check_name
from consortium.provisioning.project import ConfigurationError, Project
from consortium.provisioning.provision import provision

COMMANDS = ("add-site",)
JOIN_TIMEOUT_S = 60.0


def check_new_site(name: str, org: str, consortium: Project) -> None:
    """ConfigurationError naming the file and field when ``name``/``org`` cannot be a new site
    (FLARE's name rules, :mod:`consortium.names`)."""
    check_name("site", name, "add-site: NAME")
    check_name("org", org, "add-site: --org")
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


def start_in_poc(name: str, workspace: Path, profiles: Path | None = None, echo=print,
                 timeout: float = JOIN_TIMEOUT_S):
    """Record ``name`` (already added) in the running POC of ``workspace``, start it, and wait
    until the server lists it; returns the POC state."""
    from consortium.data.imaging import load_profiles, write_site_data
    from consortium.poc import lifecycle as poc

    workspace = workspace.resolve()
    state = poc.PocState.load(workspace / poc.STATE_FILE)
    if state is None or not poc.running(state):
        raise poc.PocError(f"no running POC in {workspace}; start one with `consortium poc up`")
    kit = Path(state.kits) / name
    if profiles is not None and Path(profiles).is_file() and name in (found := load_profiles(profiles)):
        write_site_data(kit / "data" / "imaging", found[name])
        echo(f"{name}: imaging data generated at the site from {profiles}")
    if name not in state.clients:
        state.clients.append(name)
        state.save(workspace / poc.STATE_FILE)
    poc.launch_site(state, name, Project.load(workspace / "project.yml"))
    entry = next(p for p in state.procs if p.site == name)
    sess = poc.admin_session(state)
    try:
        deadline = time.monotonic() + timeout
        while name not in poc.connected_clients(sess):
            if poc.alive(entry) is None:
                raise poc.PocError(f"{name} exited while joining; see {kit / 'console.log'}")
            if time.monotonic() > deadline:
                raise poc.PocError(f"{name} did not join within {timeout:.0f} s; see {kit / 'console.log'}")
            time.sleep(0.5)
    finally:
        sess.close()
    echo(f"{name} joined the consortium (pid {entry.pid})")
    return state


def add_parser(sub) -> None:
    p = sub.add_parser("add-site", help="project admin: a kit for a new hospital under the same root CA")
    p.add_argument("name", help="the new site's name")
    p.add_argument("--org", required=True, help="the hospital's organisation")
    p.add_argument("--workspace", type=Path, default=None,
                   help="the provisioning workspace (`consortium provision --output`; default: the POC's)")
    p.add_argument("--project", type=Path, default=default_path("provisioning/project.yml"),
                   help="project.yml beside the site policy templates (default: %(default)s)")
    p.add_argument("--start", action="store_true", help="POC: start the site and wait until it joins")
    p.add_argument("--profiles", type=Path, default=default_path("poc_workspace/scanner_profiles.json"),
                   help="POC: scanner profiles; the new site's imaging data is made from its own (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    workspace = args.workspace
    if workspace is None:
        from consortium.cli.main import DEFAULT_WORKSPACE as workspace
    if args.start:
        from consortium.poc import lifecycle as poc
        state = poc.PocState.load(Path(workspace).resolve() / poc.STATE_FILE)
        if state is None or not poc.running(state):  # before the kit is made
            raise poc.PocError(f"--start: no running POC in {workspace}; start one with `consortium poc up`")
    kit = add_site(args.name, args.org, workspace, Project.load(args.project))
    print(f"new kit: {kit} (existing kits untouched)")
    if args.start:
        start_in_poc(args.name, workspace, args.profiles)
    return 0
