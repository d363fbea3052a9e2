"""Startup kits from a :class:`~consortium.provisioning.project.Project`, and the site policies every kit gets.

The same function makes the local POC (``ProvisionMode.POC``: the server is reached as localhost)
and production kits (``ProvisionMode.NORMAL``). The site policies in ``provisioning/site_policies/``
are written into the kits by :class:`consortium.provisioning.builders.site_policies.SitePoliciesBuilder` while
FLARE provisions, before its signature builder, so they are part of the signed kit;
:func:`install_site_policies` checks a provisioned kit against them and installs them into an
unsigned kit made elsewhere.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import yaml

from consortium.fileio import owner_only, restrict_secrets
from consortium.flare.kit_policies import SIGNATURE_FILE
from consortium.names import ConfigurationError
from consortium.provisioning.builders.site_policies import SitePolicies
from consortium.provisioning.privacy_scopes import POLICY_FILE, simulator_privacy_policy
from consortium.provisioning.project import SITE_POLICIES_BUILDER, Project, default_server_storage


def provision(project: Project, workspace: Path, poc: bool, server_storage: Path | None = None) -> Path:
    """Provision ``project`` into ``workspace``; returns the kit folder (``.../prod_00``).

    The project's :class:`~consortium.provisioning.builders.site_policies.SitePoliciesBuilder` is given the policy
    folder and the server's storage root: ``server_storage``, an absolute path on the server host
    (default: ``workspace`` for the POC, which runs here; :func:`default_server_storage` for
    production kits, which run on another host where the provisioning workspace does not exist).
    The kits are then checked against the policies (:func:`install_site_policies`), so a kit that
    lacks them is never returned."""
    from nvflare.lighter.constants import CtxKey, ProvisionMode
    from nvflare.lighter.prov_utils import prepare_builders, prepare_packager
    from nvflare.lighter.provision import prepare_project
    from nvflare.lighter.provisioner import Provisioner
    from nvflare.lighter.utils import update_server_default_host


    project.check()  # before anything is written: a refused project leaves no trace in the workspace
    SitePolicies.load(project.policies_dir).check_sites(project.clients)  # FLARE's provisioner logs a builder's error, not raises it
    if server_storage is None:
        server_storage = workspace if poc else default_server_storage(project)
    if not Path(server_storage).is_absolute():
        raise ConfigurationError(f"server storage must be an absolute path on the server host (FLARE's storage needs "
                                 f"one), got {os.fspath(server_storage)!r}")
    config = copy.deepcopy(project.config)
    config["builders"] = _with_site_policies(project, config.get("builders") or [], Path(server_storage))
    if poc:
        config = update_server_default_host(config, "localhost")
        config["builders"] = _with_loopback_server(config.get("builders") or [])
    try:
        flare_project = prepare_project(copy.deepcopy(config))
        builders, packager = prepare_builders(config), prepare_packager(config)
    except (ValueError, TypeError, KeyError, RuntimeError) as e:  # FLARE's own checks of project.yml
        raise ConfigurationError(f"{project.path}: refused by FLARE's provisioner: {e}") from None
    made = not workspace.exists()
    try:
        with owner_only():  # cert.json, keys, CKKS contexts: 0600 from the moment they exist
            workspace.mkdir(parents=True, exist_ok=True)
            mode = ProvisionMode.POC if poc else ProvisionMode.NORMAL
            ctx = Provisioner(str(workspace), builders, packager).provision(flare_project, mode=mode)
        restrict_secrets(workspace)  # and any a builder wrote with an explicit wider mode
        if ctx.get(CtxKey.BUILD_ERROR):
            raise RuntimeError(f"provisioning {project.path} into {workspace} failed in a builder (its error is printed above)")
        prod = sorted((workspace / project.name).glob("prod_*"))
        if not prod:
            raise RuntimeError(f"provisioning produced no kits under {workspace / project.name}")
        kits = prod[-1]
        install_site_policies(project, kits, storage_root=Path(server_storage))
        (workspace / "project.yml").write_text(yaml.safe_dump(config, sort_keys=False))  # what was provisioned
    except BaseException:
        if made:  # a workspace this call made holds nothing usable: leave none behind
            import shutil

            shutil.rmtree(workspace, ignore_errors=True)
        raise
    return kits


def _sign_index(builders: list[dict]) -> int:
    return next((i for i, b in enumerate(builders) if str(b.get("path", "")).endswith("SignatureBuilder")), len(builders))


def _with_site_policies(project: Project, builders: list[dict], storage_root: Path) -> list[dict]:
    """The builders with the site policy builder's ``policies`` and ``storage_root`` set;
    ConfigurationError when project.yml lists none, or lists it after the signature builder."""
    hits = [i for i, b in enumerate(builders) if str(b.get("path", "")).endswith(SITE_POLICIES_BUILDER)]
    if len(hits) != 1 or hits[0] > _sign_index(builders):
        raise ConfigurationError(f"{project.path}: field 'builders' must list {SITE_POLICIES_BUILDER} once, before "
                                 f"the SignatureBuilder, so that the site policies are part of the signed kit; found at {hits}")
    builders = copy.deepcopy(builders)
    args = builders[hits[0]].setdefault("args", {}) or {}
    args.update(policies=str(project.policies_dir.resolve()), storage_root=str(storage_root))
    builders[hits[0]]["args"] = args
    return builders


def _with_loopback_server(builders: list[dict]) -> list[dict]:
    """The project's builders with :class:`~consortium.provisioning.builders.loopback.LoopbackServerBuilder` before
    the signature builder (or last), so a POC server listens on 127.0.0.1 only."""
    loopback = {"path": "consortium.provisioning.builders.loopback.LoopbackServerBuilder", "args": {}}
    sign = _sign_index(builders)
    return [*builders[:sign], loopback, *builders[sign:]]


def install_site_policies(project: Project, kits: Path, storage_root: Path | None = None) -> None:
    """Make every server and site kit under ``kits`` carry the site policies.

    Provisioned kits already do (the policy builder wrote them): each file is compared, byte for
    byte, with what the builder writes for ``storage_root``, and nothing is written. A kit made
    without the builder (unsigned) gets the missing or different files. A file that differs in a
    folder with a ``signature.json`` is refused (RuntimeError naming the file): rewriting it would
    leave the kit with a policy its signature does not vouch for; re-provision instead.
    """

    policies = SitePolicies.load(project.policies_dir)
    policies.check_sites(project.clients)
    server = project.server["name"]
    for site in [server, *project.clients]:
        kit = kits / site
        if not (kit / "local").is_dir():
            raise RuntimeError(f"kit for {site} missing its local/ folder: {kit / 'local'}")
        for rel, data in policies.files_for(kit / "local", site == server, site, storage_root).items():
            path = kit / rel
            if path.is_file() and path.read_bytes() == data:
                continue
            if (path.parent / SIGNATURE_FILE).is_file():
                raise RuntimeError(f"{path}: {'differs from' if path.exists() else 'lacks'} the site policy in "
                                   f"{project.policies_dir}, and its folder is signed ({path.parent / SIGNATURE_FILE}): "
                                   "re-provision the kit instead of editing it")
            path.write_bytes(data)


def class_allow_list(project: Project) -> tuple[str, list[str]]:
    """(enforcement mode, FLARE's default allow-list + ``extra_allowed``) from the policy template."""

    policies = SitePolicies.load(project.policies_dir)
    return policies.enforcement_mode, list(policies.allowed)


def simulator_workspace_policies(project: Project, workspace: Path) -> None:
    """The allow-list and the site audit trail for ``nvflare simulator``: it copies ``WS/local``
    (``resources.json``, ``privacy.json``) into every simulated site's workspace."""

    mode, allowed = class_allow_list(project)
    local = workspace / "local"
    local.mkdir(parents=True, exist_ok=True)
    resources = {"class_list_enforcement_mode": mode, "class_allow_list": allowed}
    (local / "resources.json").write_text(json.dumps(resources, indent=2) + "\n")
    (local / POLICY_FILE).write_text(json.dumps(simulator_privacy_policy(), indent=2) + "\n")
