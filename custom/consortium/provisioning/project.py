"""Startup kits from provisioning/project.yml, and the site policies every kit gets.

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
from dataclasses import dataclass
from pathlib import Path

import yaml

from consortium.fileio import owner_only, restrict_secrets
from consortium.names import ConfigurationError, check_name

POLICIES_DIR = "site_policies"
SITE_POLICIES_BUILDER = "consortium.provisioning.builders.site_policies.SitePoliciesBuilder"
PARTICIPANT_KINDS = {"server": "server", "client": "site", "admin": "admin"}  # project.yml type -> name rule
BUILDERS = frozenset({  # the only classes a project.yml may name as builders: FLARE instantiates them
    "nvflare.lighter.impl.workspace.WorkspaceBuilder",  # the kit folders from FLARE's templates
    "nvflare.lighter.impl.static_file.StaticFileBuilder",  # fed_client/server.json, start scripts
    "nvflare.lighter.impl.cert.CertBuilder",  # the root CA and every kit's certificate
    "nvflare.lighter.impl.signature.SignatureBuilder",  # signature.json of each kit
    "nvflare.lighter.impl.he.HEBuilder",  # FLARE's own HE contexts: benchmarks/he_cost.py compares them with ours
    "consortium.provisioning.builders.he_keys.HEKeysBuilder",
    "consortium.provisioning.builders.server_settings.ServerSettingsBuilder",
    SITE_POLICIES_BUILDER,
    "consortium.provisioning.builders.loopback.LoopbackServerBuilder",
})


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
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise ConfigurationError(f"{path}: not valid YAML ({_one_line(e)})") from None
        if not isinstance(config, dict) or "name" not in config or "participants" not in config:
            raise ConfigurationError(f"{path}: needs top-level fields 'name' and 'participants'")
        project = cls(path, config)
        project.check()
        return project

    def check(self) -> None:
        """ConfigurationError naming the file, field and value unless the project's name and every
        participant's name, type and org follow FLARE's rules (:mod:`consortium.names`) and there
        is exactly one server: checked before anything is provisioned from it."""
        check_name("project", self.config.get("name"), f"{self.path}: field 'name'")
        parts = self.config.get("participants")
        if not isinstance(parts, list) or not parts:
            raise ConfigurationError(f"{self.path}: field 'participants' = {parts!r}: must be a list of participants "
                                     "(mappings with name, type and org), one of them the server")
        for i, p in enumerate(parts):
            where = f"{self.path}: field 'participants[{i}]'"
            if not isinstance(p, dict):
                raise ConfigurationError(f"{where} = {p!r}: must be a mapping with name, type and org")
            kind = PARTICIPANT_KINDS.get(p.get("type"))
            if kind is None:
                raise ConfigurationError(f"{where}.type = {p.get('type')!r}: must be one of {sorted(PARTICIPANT_KINDS)}")
            check_name(kind, p.get("name"), f"{where}.name")
            check_name("org", p.get("org"), f"{where}.org")
        names = [p["name"] for p in parts]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigurationError(f"{self.path}: field 'participants' names {twice} more than once")
        _ = self.server  # exactly one (ConfigurationError naming how many)
        builders = self.config.get("builders") or []
        if not isinstance(builders, list):
            raise ConfigurationError(f"{self.path}: field 'builders' = {builders!r}: must be a list")
        for i, b in enumerate(builders):
            path = b.get("path") if isinstance(b, dict) else b
            if path not in BUILDERS:
                raise ConfigurationError(f"{self.path}: field 'builders[{i}].path' = {path!r}: not a builder of this "
                                         f"consortium; allowed: {sorted(BUILDERS)}")
        if self.config.get("packager"):
            raise ConfigurationError(f"{self.path}: field 'packager' = {self.config['packager']!r}: no packager is "
                                     "allowed (kits are sent as folders)")

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


def _one_line(error: Exception) -> str:
    """A YAML parser's error as one line: where, and what."""
    mark = getattr(error, "problem_mark", None)
    what = getattr(error, "problem", None) or str(error)
    return f"line {mark.line + 1}, column {mark.column + 1}: {what}" if mark is not None else " ".join(str(what).split())


def default_server_storage(project: Project) -> Path:
    """Where a production server keeps its job and snapshot storage unless told otherwise: a
    persistent folder on the server host (FLARE's default is under /tmp)."""
    return Path("/var/lib/nvflare") / project.name


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

    from consortium.provisioning.builders.site_policies import SitePolicies

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
    """Make every server and site kit under ``kits`` carry the site policies.

    Provisioned kits already do (the policy builder wrote them): each file is compared, byte for
    byte, with what the builder writes for ``storage_root``, and nothing is written. A kit made
    without the builder (unsigned) gets the missing or different files. A file that differs in a
    folder with a ``signature.json`` is refused (RuntimeError naming the file): rewriting it would
    leave the kit with a policy its signature does not vouch for; re-provision instead.
    """
    from consortium.provisioning.builders.site_policies import SIGNATURE_FILE, SitePolicies

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
    from consortium.provisioning.builders.site_policies import SitePolicies

    policies = SitePolicies.load(project.policies_dir)
    return policies.enforcement_mode, list(policies.allowed)


def simulator_workspace_policies(project: Project, workspace: Path) -> None:
    """The allow-list and the site audit trail for ``nvflare simulator``: it copies ``WS/local``
    (``resources.json``, ``privacy.json``) into every simulated site's workspace."""
    from consortium.provisioning.privacy_scopes import POLICY_FILE, simulator_privacy_policy  # it imports this module

    mode, allowed = class_allow_list(project)
    local = workspace / "local"
    local.mkdir(parents=True, exist_ok=True)
    resources = {"class_list_enforcement_mode": mode, "class_allow_list": allowed}
    (local / "resources.json").write_text(json.dumps(resources, indent=2) + "\n")
    (local / POLICY_FILE).write_text(json.dumps(simulator_privacy_policy(), indent=2) + "\n")
