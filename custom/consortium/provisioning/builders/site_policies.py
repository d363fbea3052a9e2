"""Provisioning builder: every kit's site policies, written before FLARE's signature builder.

What a kit gets (one definition, :meth:`SitePolicies.files_for`, also used by
:func:`consortium.provisioning.provision.install_site_policies` for kits made elsewhere):

* ``local/resources.json``: FLARE's ``resources.json.default`` with the consortium's closed class
  allow-list: :data:`consortium.allowlist.DEFAULT_ALLOW_LIST` (exact classes, generated from the
  recipe catalogue) plus the consortium's own ``extra_allowed`` exact class paths
  (``site_policies/class_allow_list.json``; a prefix is refused); at the server, job and snapshot storage
  under the provisioning workspace instead of ``/tmp/nvflare``;
* ``local/authorization.json``: ``site_policies/authorization.json`` byte for byte;
* ``local/privacy.json`` at every client site (:mod:`consortium.provisioning.privacy_scopes`);
* ``startup/fed_server.json`` / ``startup/fed_client.json``: FLARE's, with ``"app_validator"``
  set to :class:`consortium.flare.job_content.JobContentValidator`, which refuses at deployment
  an app carrying anything beyond its config files, or a class off the kit's allow-list;
* at the server, ``startup/consortium_audit__p_resources.json``: the server audit component
  (:mod:`consortium.flare.audit.server`), which FLARE adds to the server *parent* process's
  components (``*__p_resources.json``, nvflare 2.9 ``Workspace.get_config_files_for_startup``).

What FLARE signs and checks (nvflare 2.9.0, ``lighter/impl/signature.py``): a kit gets
``signature.json`` only when it is a CC or an HE kit. Ours are HE kits (:mod:`consortium.provisioning.builders.he_keys`
writes the TenSEAL contexts into every server and site kit), so ``startup/`` and ``local/`` are both
signed with the root CA key, and everything this builder writes is covered. At start, in secure
mode, FLARE verifies ``startup/`` only (``fed_utils._check_secure_content``: fed_*.json, the
certificates, and every ``*__resources.json`` / ``*__p_resources.json`` in ``startup/``): a
tampered or unsigned server audit declaration stops the server. ``local/signature.json`` is
checked by nobody in FLARE at run time; :func:`consortium.flare.kit_policies.policy_signature_problems` checks our policy files
against it (the server audit component runs it at server start; ``consortium`` can run it on any kit).
Admin kits are not HE kits and are not signed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from nvflare.lighter.spec import Builder

from consortium.allowlist import DEFAULT_ALLOW_LIST, DEFAULT_ALLOWED, entry_problem
from consortium.flare.kit_policies import DECLARATION, SERVER_AUDIT_FILE
from consortium.provisioning.project import ConfigurationError, read_json

SERVER_AUDIT_COMPONENT = {"id": "consortium_server_audit", "path": "consortium.flare.audit.server.ServerAuditTrail",
                          "args": {"folder": "audit"}}
APP_VALIDATOR = {"path": "consortium.flare.job_content.JobContentValidator", "args": {}}


def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=2) + "\n").encode("ascii")


@dataclass(frozen=True)
class SitePolicies:
    """The consortium's policy templates (``provisioning/site_policies/``), read and checked once."""

    folder: Path
    enforcement_mode: str
    allowed: tuple[str, ...]
    authorization: bytes
    privacy_template: dict

    @classmethod
    def load(cls, folder: Path | str) -> SitePolicies:
        folder = Path(folder)
        if not folder.is_dir():
            raise ConfigurationError(f"{folder}: site policy folder not found")
        allow_file = folder / "class_allow_list.json"
        allow = read_json(allow_file)
        extra = allow.get("extra_allowed")
        if not isinstance(extra, list):
            raise ConfigurationError(f"{allow_file}: field 'extra_allowed' must be a list of exact class paths, got {extra!r}")
        for i, entry in enumerate(extra):
            problem = entry_problem(entry)
            if problem is not None:
                raise ConfigurationError(f"{allow_file}: field extra_allowed[{i}] = {entry!r}: {problem}")
        mode = allow.get("class_list_enforcement_mode", "enforce")
        if mode != "enforce":
            raise ConfigurationError(f"{allow_file}: field 'class_list_enforcement_mode' = {mode!r}; only 'enforce' is supported")
        allowed = closed_allow_list(extra)
        authz_file = folder / "authorization.json"
        authz = read_json(authz_file)
        if not isinstance(authz.get("permissions"), dict):
            raise ConfigurationError(f"{authz_file}: field 'permissions' must be a map of roles, got {authz.get('permissions')!r}")
        return cls(folder, mode, allowed, authz_file.read_bytes(), read_json(folder / "privacy.json"))

    def check_sites(self, clients: list[str]) -> None:
        """ConfigurationError when the privacy template names sites that are not ``clients``."""
        template = self.privacy_template
        named = set(template.get("require_dp", []) or []) | set(template.get("site_budgets", {}) or {})
        unknown = sorted(named - set(clients))
        if unknown:
            raise ConfigurationError(f"{self.folder / 'privacy.json'}: names {unknown}, "
                                     f"which are not sites of the project {sorted(clients)}")

    def files_for(self, local: Path, is_server: bool, site: str, storage_root: Path | None) -> dict[str, bytes]:
        """The policy files of one kit, by path relative to the kit folder; ``local`` is its
        ``local/`` folder (its ``resources.json.default`` is the base of ``resources.json``)."""
        from consortium.provisioning.privacy_scopes import site_privacy_policy  # it imports kits, which imports this lazily

        resources = read_json(local / "resources.json.default")
        resources["class_list_enforcement_mode"] = self.enforcement_mode
        resources["class_allow_list"] = list(self.allowed)
        if is_server and storage_root is not None:
            _point_storage(resources, Path(storage_root))
        files = {"local/resources.json": _json_bytes(resources), "local/authorization.json": self.authorization}
        startup = Path(local).parent / "startup"
        fed = "fed_server.json" if is_server else "fed_client.json"
        files[f"startup/{fed}"] = _with_app_validator(startup / fed)
        if is_server:
            files[f"startup/{SERVER_AUDIT_FILE}"] = _json_bytes({"components": [SERVER_AUDIT_COMPONENT]})
            for name, content in DECLARATION.items():  # the job process's keeper of the sites' trail heads
                files[f"startup/{name}"] = _json_bytes(content)
        else:
            files["local/privacy.json"] = _json_bytes(
                site_privacy_policy(self.privacy_template, site, self.folder / "privacy.json"))
        return files


def _with_app_validator(fed: Path) -> bytes:
    """``fed`` (a kit's fed_server.json / fed_client.json) declaring :data:`APP_VALIDATOR`; its
    bytes unchanged when it already does (a later builder may rewrite it in its own layout)."""
    config = read_json(fed)
    if config.get("app_validator") == APP_VALIDATOR:
        return fed.read_bytes()
    return _json_bytes(config | {"app_validator": APP_VALIDATOR})


def closed_allow_list(extra=()) -> tuple[str, ...]:
    """The list a kit enforces: the default (by role, in :data:`DEFAULT_ALLOW_LIST`'s order), then
    ``extra`` entries not already on it."""
    default = [p for entries in DEFAULT_ALLOW_LIST.values() for p in entries]
    return (*default, *dict.fromkeys(e for e in extra if e not in DEFAULT_ALLOWED))


def _point_storage(resources: dict, root: Path) -> None:
    for comp in resources.get("components", []):
        args = comp.get("args", {})
        if "uri_root" in args:
            args["uri_root"] = os.fspath(root / "jobs-storage")
    storage = resources.get("snapshot_persistor", {}).get("args", {}).get("storage", {}).get("args", {})
    if "root_dir" in storage:
        storage["root_dir"] = os.fspath(root / "snapshot-storage")


class SitePoliciesBuilder(Builder):
    def __init__(self, policies: str | None = None, storage_root: str | None = None) -> None:
        """Args:
            policies: the policy template folder (``consortium provision`` and ``poc up`` set it to
                ``provisioning/site_policies`` by absolute path).
            storage_root: where the server keeps job and snapshot storage (None: FLARE's default).
        """
        if not policies:
            raise ValueError("project.yml: SitePoliciesBuilder arg 'policies' is not set: provision with "
                             "`consortium provision` (it sets the site_policies folder), or give its path")
        self.policies = SitePolicies.load(policies)
        self.storage_root = Path(storage_root) if storage_root else None

    def build(self, project, ctx) -> None:
        server = project.get_server()
        clients = project.get_clients()
        self.policies.check_sites([c.name for c in clients])
        for p in [server, *clients]:
            local = Path(ctx.get_local_dir(p))
            files = self.policies.files_for(local, p is server, p.name, self.storage_root)
            root = Path(ctx.get_ws_dir(p))
            for rel, data in files.items():
                (root / rel).write_bytes(data)
