"""Check a FLARE job folder before it is submitted, with the rules the server and the sites apply
at deployment, and more:

* ``meta.json``: its ``deploy_map`` names apps by plain names (a folder of the job: ``../x`` is
  refused before anything is read) and sites of the consortium (``server``, ``@ALL`` or a site);
* no file over its size limit, and every app holds configuration only
  (:func:`consortium.job_content.check_app_content`, the sites' own check);
* every class path (``path``, nested ``{"path", "args"}``, ``model_path``) on the allow-list
  (membership, nothing imported), then each config's values typed and in range
  (:func:`consortium.jobs.values.check_config_values`), then every class path through the one
  resolver (:func:`consortium.allowlist.resolve_component`): imported, a class of its role;
* min_clients no larger than the consortium, ``site_epochs`` naming its sites.

Every problem names the file, the field and the value (ConfigurationError, no traceback).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from consortium.allowlist import (
    DEFAULT_ALLOWED,
    ComponentRefused,
    check_admitted,
    entry_problem,
    path_arguments,
    resolve_component,
)
from consortium.job_content import MAX_CONFIG_BYTES, MAX_MODEL_BYTES, JobContentRefused, app_files, check_app_content
from consortium.names import name_problem
from consortium.provisioning.project import ConfigurationError, Project, read_json
from consortium.provisioning.provision import class_allow_list

SERVER_CONFIG = "config_fed_server.json"
CLIENT_CONFIG = "config_fed_client.json"
DEPLOY_TARGETS = ("server", "@ALL")


@dataclass(frozen=True)
class AllowList:
    """The class paths a site admits: exact entries only (a prefix entry, ending in '.', admits
    nothing), and the file they come from."""

    source: Path | None
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
        return entry_problem(path) is None and path in self.entries


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
    executors = config.get("executors")
    for i, entry in enumerate(executors if isinstance(executors, list) else []):
        executor = entry.get("executor") if isinstance(entry, dict) else None
        args = executor.get("args") if isinstance(executor, dict) else None
        if isinstance(args, dict) and "site_epochs" in args:
            yield f"executors[{i}].executor.args.site_epochs", args["site_epochs"]


def _deploy_apps(job: Path, meta: dict, sites: Sequence[str] | None) -> list[str]:
    """The app names of ``meta``'s deploy_map, each a plain name and deployed to known targets."""
    where = job / "meta.json"
    deploy = meta.get("deploy_map")
    if not isinstance(deploy, dict) or not deploy:
        raise ConfigurationError(f"{where}: field 'deploy_map' must map app names to sites, got {deploy!r}")
    for app, targets in deploy.items():
        problem = name_problem("app", app)  # the one name rule (FLARE's): no '/', never starting with '.'
        if problem is not None:
            raise ConfigurationError(f"{where}: field deploy_map names the app {app!r}: an app is a plain folder name of "
                                     f"the job ({problem}), never a path")
        if isinstance(targets, dict):
            targets = targets.get("sites")
        if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
            raise ConfigurationError(f"{where}: field deploy_map.{app} = {targets!r} must be a list of site names")
        known = set(DEPLOY_TARGETS) | set(sites) if sites is not None else None
        unknown = sorted(set(targets) - known) if known is not None else []
        if unknown:
            raise ConfigurationError(f"{where}: field deploy_map.{app} names {unknown}, not sites of this consortium "
                                     f"{sorted(sites)} (nor 'server' or '@ALL')")
    return list(deploy)


def _job_files(job: Path, apps: list[str]) -> None:
    """ConfigurationError for a file of ``job`` outside meta.json and its apps, or an app that is
    not configuration only (sizes are read from the directory, nothing is opened)."""
    for entry in sorted(job.iterdir()):
        if entry.name == "meta.json":
            if entry.is_symlink() or entry.stat().st_size > MAX_CONFIG_BYTES:
                raise ConfigurationError(f"{entry}: a link or over the limit of {MAX_CONFIG_BYTES} bytes")
        elif entry.name not in apps and not entry.name.startswith(".__nvfl_"):
            size = entry.stat().st_size if entry.is_file() else 0
            big = f" ({size} bytes, over the limit of {MAX_MODEL_BYTES})" if size > MAX_MODEL_BYTES else ""
            raise ConfigurationError(f"{entry}: not an app of meta.json's deploy_map {apps}{big}: a job folder holds "
                                     "meta.json and its apps only")
    for app in apps:
        if (job / app).is_symlink() or (job / app).exists() and not (job / app).is_dir():
            raise ConfigurationError(f"{job / app}: not an app folder (a link or a file, named in {job / 'meta.json'} deploy_map)")
        if not (job / app).exists():
            continue  # its config files are reported missing next
        try:
            app_files(job / app)
        except JobContentRefused as e:
            raise ConfigurationError(str(e)) from None


def _refused(path: Path, paths: list, check) -> None:
    for arg in paths:
        try:
            check(arg)
        except ComponentRefused as e:
            raise ConfigurationError(f"{path}: {e}; the server and the sites would refuse the job") from None


def _check_values(path: Path, config: dict, sites: Sequence[str] | None) -> None:
    from consortium.jobs.values import check_config_values  # typed values and ranges (its own module)

    check_config_values(path, config, sites)


def check_job(job: Path | str, sites: Sequence[str] | None = None, allowed: AllowList | None = None) -> dict:
    """Validate ``job`` against a consortium of ``sites`` (None: skip the checks that need them)
    and its class allow-list (None: the default, :data:`consortium.allowlist.DEFAULT_ALLOWED`);
    returns its meta.json. Raises ConfigurationError on the first problem."""
    job = Path(job)
    if not job.is_dir():
        raise ConfigurationError(f"{job}: job folder not found")
    entries = DEFAULT_ALLOWED if allowed is None else allowed.entries
    source = str(allowed.source) if allowed is not None and allowed.source else "consortium.allowlist.DEFAULT_ALLOW_LIST"
    meta_path = job / "meta.json"
    if meta_path.is_file() and meta_path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigurationError(f"{meta_path}: {meta_path.stat().st_size} bytes, over the limit of {MAX_CONFIG_BYTES}")
    meta = read_json(meta_path)
    apps = _deploy_apps(job, meta, sites)
    _job_files(job, apps)
    counts = [("meta.json: min_clients", meta["min_clients"])] if "min_clients" in meta else []
    for app in apps:
        for name in (SERVER_CONFIG, CLIENT_CONFIG):
            path = job / app / "config" / name
            config = read_json(path)
            paths = list(path_arguments(config))
            _refused(path, paths, lambda a: check_admitted(a.path, f"field {a.where}", entries, source))  # nothing imported
            _check_values(path, config, sites)
            _refused(path, paths, lambda a: resolve_component(a.path, a.role, entries, where=f"field {a.where}", source=source))
            counts += [(f"{path.name}: {w}", v) for w, v in _min_clients(config, "")]
            for where, value in _site_epochs(config):
                if not isinstance(value, dict):
                    raise ConfigurationError(f"{path}: field {where} = {value!r} must map site names to epochs")
                unknown = sorted(set(value) - set(sites)) if sites is not None else []
                if unknown:
                    raise ConfigurationError(f"{path}: field {where} names {unknown}, not sites of this consortium "
                                             f"{sorted(sites)}")
        try:
            check_app_content(job / app, entries, source)  # what the server and every site check at deployment
        except JobContentRefused as e:
            raise ConfigurationError(str(e)) from None
    for where, value in counts:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigurationError(f"{job}: {where} = {value!r} must be a positive integer")
        if sites is not None and value > len(sites):
            raise ConfigurationError(f"{job}: {where} = {value} is larger than the consortium ({len(sites)} sites)")
    return meta
