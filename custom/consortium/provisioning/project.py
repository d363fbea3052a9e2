"""``provisioning/project.yml`` read and checked once: the consortium's participants, their names
(FLARE's rules), the builders a project may name, and where its site policies are
(:class:`Project`). :mod:`consortium.provisioning.provision` makes the kits from it.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

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
