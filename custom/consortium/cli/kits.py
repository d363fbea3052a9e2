"""Startup kits from provisioning/project.yml, and the site policies every kit gets.

The same function makes the local POC (``ProvisionMode.POC``: the server is reached as localhost)
and production kits (``ProvisionMode.NORMAL``); :func:`install_site_policies` installs the
class allow-list and authorization templates from ``provisioning/site_policies/`` into both.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

POLICIES_DIR = "site_policies"


class ConfigurationError(ValueError):
    """A project or job file that cannot be used; the message names file, field and value."""


@dataclass(frozen=True)
class Project:
    path: Path
    config: dict

    @classmethod
    def load(cls, path: Path | str) -> Project:
        path = Path(path)
        if not path.is_file():
            raise ConfigurationError(f"{path}: project file not found")
        try:
            config = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ConfigurationError(f"{path}: not valid YAML: {e}") from e
        if not isinstance(config, dict) or "name" not in config or "participants" not in config:
            raise ConfigurationError(f"{path}: needs top-level fields 'name' and 'participants'")
        return cls(path, config)

    @property
    def name(self) -> str:
        return self.config["name"]

    def _of_type(self, kind: str) -> list[dict]:
        return [p for p in self.config["participants"] if p.get("type") == kind]

    @property
    def server(self) -> dict:
        servers = self._of_type("server")
        if len(servers) != 1:
            raise ConfigurationError(f"{self.path}: participants: expected one server, found {len(servers)}")
        return servers[0]

    @property
    def clients(self) -> list[str]:
        return [p["name"] for p in self._of_type("client")]

    @property
    def project_admin(self) -> str:
        admins = [p["name"] for p in self._of_type("admin") if p.get("role") == "project_admin"]
        if len(admins) != 1:
            raise ConfigurationError(f"{self.path}: participants: expected one project_admin, found {admins}")
        return admins[0]

    @property
    def port(self) -> int:
        return int(self.server.get("fed_learn_port", 8002))

    def with_port(self, port: int) -> Project:
        config = copy.deepcopy(self.config)
        for p in config["participants"]:
            if p.get("type") == "server":
                p["fed_learn_port"] = port
                p.pop("admin_port", None)
        return Project(self.path, config)

    @property
    def policies_dir(self) -> Path:
        return self.path.parent / POLICIES_DIR


def provision(project: Project, workspace: Path, poc: bool) -> Path:
    """Provision ``project`` into ``workspace``; returns the kit folder (``.../prod_00``)."""
    from nvflare.lighter.constants import ProvisionMode
    from nvflare.lighter.prov_utils import prepare_builders, prepare_packager
    from nvflare.lighter.provision import prepare_project
    from nvflare.lighter.provisioner import Provisioner
    from nvflare.lighter.utils import update_server_default_host

    workspace.mkdir(parents=True, exist_ok=True)
    config = copy.deepcopy(project.config)
    if poc:
        config = update_server_default_host(config, "localhost")
        config["builders"] = _with_loopback_server(config.get("builders") or [])
    (workspace / "project.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    mode = ProvisionMode.POC if poc else ProvisionMode.NORMAL
    Provisioner(str(workspace), prepare_builders(config), prepare_packager(config)).provision(
        prepare_project(copy.deepcopy(config)), mode=mode
    )
    prod = sorted((workspace / project.name).glob("prod_*"))
    if not prod:
        raise RuntimeError(f"provisioning produced no kits under {workspace / project.name}")
    kits = prod[-1]
    install_site_policies(project, kits, storage_root=workspace)
    return kits


def _with_loopback_server(builders: list[dict]) -> list[dict]:
    """The project's builders with :class:`~consortium.cli.loopback.LoopbackServerBuilder` before
    the signature builder (or last), so a POC server listens on 127.0.0.1 only."""
    loopback = {"path": "consortium.cli.loopback.LoopbackServerBuilder", "args": {}}
    sign = next((i for i, b in enumerate(builders) if str(b.get("path", "")).endswith("SignatureBuilder")), len(builders))
    return [*builders[:sign], loopback, *builders[sign:]]


def read_json(path: Path) -> dict:
    """A JSON object from ``path``; ConfigurationError naming the file (and line) otherwise."""
    if not path.is_file():
        raise ConfigurationError(f"{path}: file missing")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigurationError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from e
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path}: top level must be a JSON object, got {type(data).__name__}")
    return data


def install_site_policies(project: Project, kits: Path, storage_root: Path | None = None) -> None:
    """Write ``local/resources.json`` (FLARE's defaults + our allow-list) and ``authorization.json``.

    A site's ``resources.json`` replaces its ``resources.json.default`` (no merge), so it is the
    full default with ``class_allow_list`` extended. The server's job and snapshot storage are
    pointed into ``storage_root`` instead of FLARE's ``/tmp/nvflare``.
    """
    mode, allowed = class_allow_list(project)
    authorization = project.policies_dir / "authorization.json"
    read_json(authorization)  # fail here, not at site start, on a broken template

    sites = [project.server["name"], *project.clients]
    for site in sites:
        local = kits / site / "local"
        if not local.is_dir():
            raise RuntimeError(f"kit for {site} missing its local/ folder: {local}")
        resources = read_json(local / "resources.json.default")
        resources["class_list_enforcement_mode"] = mode
        resources["class_allow_list"] = allowed
        if site == project.server["name"] and storage_root is not None:
            _point_storage(resources, storage_root)
        (local / "resources.json").write_text(json.dumps(resources, indent=2) + "\n")
        shutil.copyfile(authorization, local / "authorization.json")
    from consortium.cli.site_privacy import install_site_privacy  # here: site_privacy imports this module
    install_site_privacy(project, kits)


def _point_storage(resources: dict, root: Path) -> None:
    for comp in resources.get("components", []):
        args = comp.get("args", {})
        if "uri_root" in args:
            args["uri_root"] = os.fspath(root / "jobs-storage")
    storage = resources.get("snapshot_persistor", {}).get("args", {}).get("storage", {}).get("args", {})
    if "root_dir" in storage:
        storage["root_dir"] = os.fspath(root / "snapshot-storage")


def class_allow_list(project: Project) -> tuple[str, list[str]]:
    """(enforcement mode, FLARE's default allow-list + ``extra_allowed``) from the policy template."""
    from nvflare.app_common.default_component_policy import DEFAULT_CLASS_ALLOW_LIST

    allow_file = project.policies_dir / "class_allow_list.json"
    allow = read_json(allow_file)
    extra = allow.get("extra_allowed")
    if not isinstance(extra, list) or not all(isinstance(e, str) and e for e in extra):
        raise ConfigurationError(f"{allow_file}: field 'extra_allowed' must be a list of class paths, got {extra!r}")
    mode = allow.get("class_list_enforcement_mode", "enforce")
    if mode != "enforce":
        raise ConfigurationError(f"{allow_file}: field 'class_list_enforcement_mode' = {mode!r}; only 'enforce' is supported")
    return mode, list(DEFAULT_CLASS_ALLOW_LIST) + [e for e in extra if e not in DEFAULT_CLASS_ALLOW_LIST]


def simulator_workspace_policies(project: Project, workspace: Path) -> None:
    """The allow-list and the site audit trail for ``nvflare simulator``: it copies ``WS/local``
    (``resources.json``, ``privacy.json``) into every simulated site's workspace."""
    from consortium.cli.site_privacy import POLICY_FILE, simulator_privacy_policy  # it imports this module

    mode, allowed = class_allow_list(project)
    local = workspace / "local"
    local.mkdir(parents=True, exist_ok=True)
    resources = {"class_list_enforcement_mode": mode, "class_allow_list": allowed}
    (local / "resources.json").write_text(json.dumps(resources, indent=2) + "\n")
    (local / POLICY_FILE).write_text(json.dumps(simulator_privacy_policy(), indent=2) + "\n")
