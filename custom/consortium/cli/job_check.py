"""Check a FLARE job folder before it is submitted: files present, JSON valid, every component
class importable and on the consortium's class allow-list (the list the kits enforce), no
bring-your-own-code, min_clients no larger than the consortium, and every site an executor's
``site_epochs`` names a site of the consortium.

Every problem names the file, the field and the value.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from consortium.cli.kits import ConfigurationError, Project, class_allow_list, read_json

SERVER_CONFIG = "config_fed_server.json"
CLIENT_CONFIG = "config_fed_client.json"


def _paths(node, where: str) -> Iterator[tuple[str, str]]:
    """Every ``"path"`` naming a class in a config, with its location (e.g. ``components[1].args.model``)."""
    if isinstance(node, dict):
        if isinstance(node.get("path"), str):
            yield where, node["path"]
        for k, v in node.items():
            yield from _paths(v, f"{where}.{k}" if where else k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, f"{where}[{i}]")


@dataclass(frozen=True)
class AllowList:
    """The class paths a site admits (FLARE's rule: an entry ending in '.' is a package prefix,
    any other entry admits that path and what lies below it), and the file they come from."""

    source: Path
    entries: tuple[str, ...]

    @classmethod
    def of_project(cls, project: Project) -> AllowList:
        return cls(project.policies_dir / "class_allow_list.json", tuple(class_allow_list(project)[1]))

    @classmethod
    def of_kit(cls, site_kit: Path) -> AllowList:
        """The list a provisioned site enforces (``local/resources.json``)."""
        path = site_kit / "local" / "resources.json"
        entries = read_json(path).get("class_allow_list")
        if not isinstance(entries, list):
            raise ConfigurationError(f"{path}: field 'class_allow_list' = {entries!r} must be a list")
        return cls(path, tuple(entries))

    def admits(self, path: str) -> bool:
        return any(path == e or path.startswith(e if e.endswith(".") else f"{e}.") for e in self.entries)


def resolve_class(path: str):
    module, _, name = path.rpartition(".")
    if not module:
        raise ImportError(f"{path!r} is not a dotted class path")
    return getattr(importlib.import_module(module), name)


def _min_clients(node, where: str) -> Iterator[tuple[str, int]]:
    if isinstance(node, dict):
        for k, v in node.items():
            here = f"{where}.{k}" if where else k
            if k == "min_clients":
                yield here, v
            else:
                yield from _min_clients(v, here)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _min_clients(v, f"{where}[{i}]")


def _site_epochs(config: dict) -> Iterator[tuple[str, object]]:
    for i, entry in enumerate(config.get("executors") or []):
        args = (entry.get("executor") or {}).get("args") if isinstance(entry, dict) else None
        if isinstance(args, dict) and "site_epochs" in args:
            yield f"executors[{i}].executor.args.site_epochs", args["site_epochs"]


def check_job(job: Path | str, sites: Sequence[str] | None = None, allowed: AllowList | None = None) -> dict:
    """Validate ``job`` against a consortium of ``sites`` and its class allow-list (None: skip the
    checks that need them); returns its meta.json. Raises ConfigurationError on the first problem."""
    job = Path(job)
    if not job.is_dir():
        raise ConfigurationError(f"{job}: job folder not found")
    meta = read_json(job / "meta.json")
    deploy = meta.get("deploy_map")
    if not isinstance(deploy, dict) or not deploy:
        raise ConfigurationError(f"{job / 'meta.json'}: field 'deploy_map' must map app names to sites, got {deploy!r}")
    counts = [("meta.json: min_clients", meta["min_clients"])] if "min_clients" in meta else []
    for app in deploy:
        config_dir = job / app / "config"
        if (job / app / "custom").exists():
            raise ConfigurationError(f"{job / app / 'custom'}: jobs carry no code (sites admit installed consortium.* only)")
        for name in (SERVER_CONFIG, CLIENT_CONFIG):
            path = config_dir / name
            config = read_json(path)
            for where, cls in _paths(config, ""):
                if allowed is not None and not allowed.admits(cls):
                    raise ConfigurationError(f"{path}: field {where}.path = {cls!r} is not on the consortium's class "
                                             f"allow-list ({allowed.source}); the sites would refuse the job")
                try:
                    resolve_class(cls)
                except (ImportError, AttributeError) as e:
                    raise ConfigurationError(f"{path}: field {where}.path = {cls!r} names no importable class ({e})") from e
            counts += [(f"{path.name}: {w}", v) for w, v in _min_clients(config, "")]
            for where, value in _site_epochs(config):
                if not isinstance(value, dict):
                    raise ConfigurationError(f"{path}: field {where} = {value!r} must map site names to epochs")
                unknown = sorted(set(value) - set(sites)) if sites is not None else []
                if unknown:
                    raise ConfigurationError(f"{path}: field {where} names {unknown}, not sites of this consortium "
                                             f"{sorted(sites)}")
    for where, value in counts:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigurationError(f"{job}: {where} = {value!r} must be a positive integer")
        if sites is not None and value > len(sites):
            raise ConfigurationError(f"{job}: {where} = {value} is larger than the consortium ({len(sites)} sites)")
    return meta
