"""What a job's app folder may hold: configuration only. One pure check, run by
``consortium job validate`` on every app of a job, and at deployment by the server and every site
(:class:`consortium.flare.job_content.JobContentValidator`, FLARE's ``app_validator``).

An app holds:

* ``config/config_fed_client.json`` and ``config/config_fed_server.json`` (each at most
  :data:`MAX_CONFIG_BYTES`), whose every class path (:func:`consortium.allowlist.path_arguments`)
  is on the allow-list (membership only: nothing is imported);
* FLARE's job-signing files in any folder (``.__nvfl_sig.json``, ``.__nvfl_submitter.crt``:
  ``nvflare job submit`` signs every folder it uploads);
* ``resume/<name>.npz`` when the server config's ``resume_from`` names it (a registry version,
  at most :data:`MAX_MODEL_BYTES`, whose SHA-256 the persistor checks).

Anything else is refused, naming the file: no scripts, no ``custom/`` code, no other YAML (a file
left in a site's workspace could be handed to a command later), no link, nothing over its limit.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from pathlib import Path, PurePosixPath

from consortium.allowlist import DEFAULT_ALLOWED, ComponentRefused, check_admitted, path_arguments

CONFIG_FILES = ("config_fed_client.json", "config_fed_server.json")
FLARE_SIGNATURE_FILES = (".__nvfl_sig.json", ".__nvfl_submitter.crt")  # nvflare.lighter.tool_consts
RESUME_FOLDER = "resume"
SIGNED_FOLDERS = frozenset(PurePosixPath(f) for f in (".", "config", RESUME_FOLDER))  # where a signature may lie
MAX_CONFIG_BYTES = 1 << 20  # 1 MiB: the shipped configs are under 10 kB
MAX_MODEL_BYTES = 128 << 20  # 128 MiB: a registry version of the imaging UNet is under 10 MB
MAX_SIGNATURE_BYTES = 64 << 10
RULE = ("a job app carries configuration only (config/config_fed_client.json, config/config_fed_server.json, "
        "and a resume/*.npz its server config names)")


class JobContentRefused(ValueError):
    """A file of an app that is not configuration, too large, or a config naming an unlisted class."""


def app_files(app: Path | str) -> dict[PurePosixPath, int]:
    """Every file of ``app`` with its size; JobContentRefused for a link, a ``custom/`` folder, a
    file outside the rule or over its limit. Nothing is opened."""
    app = Path(app)
    if app.is_symlink() or not app.is_dir():
        raise JobContentRefused(f"{app}: not an app folder")
    files = _files(app)
    for rel, size in files.items():
        if rel.name in FLARE_SIGNATURE_FILES and rel.parent in SIGNED_FOLDERS:  # FLARE's submit signs each folder
            _limit(app, rel, size, MAX_SIGNATURE_BYTES)
        elif rel.parent == PurePosixPath("config") and rel.name in CONFIG_FILES:
            _limit(app, rel, size, MAX_CONFIG_BYTES)
        elif rel.parent == PurePosixPath(RESUME_FOLDER) and rel.suffix == ".npz":
            _limit(app, rel, size, MAX_MODEL_BYTES)
        else:
            raise JobContentRefused(f"{app / rel}: refused: {RULE}")
    return files


def check_app_content(app: Path | str, allowed: Collection[str] = DEFAULT_ALLOWED, source: str = "") -> None:
    """JobContentRefused naming the first file of ``app`` outside the rule (see the module
    docstring); ``allowed``/``source``: the class allow-list and where it comes from."""
    app = Path(app)
    files = app_files(app)
    configs = {rel: _read_config(app / rel) for rel in files if rel.parent == PurePosixPath("config")
               and rel.name in CONFIG_FILES}
    if not configs:
        raise JobContentRefused(f"{app / 'config'}: holds neither {CONFIG_FILES[0]} nor {CONFIG_FILES[1]}")
    server = configs.get(PurePosixPath("config", "config_fed_server.json"), {})
    named = {a.strip("/") for a in _resume_names(server)}
    for rel in files:
        if rel.parent == PurePosixPath(RESUME_FOLDER) and rel.suffix == ".npz" and rel.as_posix() not in named:
            raise JobContentRefused(f"{app / rel}: refused: no resume_from in config_fed_server.json names it; {RULE}")
    for rel, config in configs.items():
        for arg in path_arguments(config):
            try:
                check_admitted(arg.path, f"{app / rel}: field {arg.where}", allowed, source)
            except ComponentRefused as e:
                raise JobContentRefused(f"{e} (role {arg.role})") from None


def _files(app: Path) -> dict[PurePosixPath, int]:
    """Every file under ``app`` with its size, read from the directory entries (nothing opened)."""
    out = {}
    for root, dirs, names in os.walk(app):
        for name in dirs + names:
            path = Path(root) / name
            if path.is_symlink():
                raise JobContentRefused(f"{path}: refused: a link ({RULE})")
        for name in names:
            path = Path(root) / name
            out[PurePosixPath(path.relative_to(app).as_posix())] = path.stat().st_size
        if Path(root) == app and "custom" in dirs:
            raise JobContentRefused(f"BYOC not permitted: {app / 'custom'}: jobs carry no code (FLARE would also skip "
                                    "the class allow-list for a job with custom code)")
    return out


def _limit(app: Path, rel: PurePosixPath, size: int, limit: int) -> None:
    if size > limit:
        raise JobContentRefused(f"{app / rel}: {size} bytes, over the limit of {limit} bytes for this file")


def _read_config(path: Path) -> dict:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise JobContentRefused(f"{path}: not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise JobContentRefused(f"{path}: must be a JSON object, got {type(config).__name__}")
    return config


def _resume_names(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["resume_from"]] if isinstance(node.get("resume_from"), str) else []
        return found + [n for v in node.values() for n in _resume_names(v)]
    if isinstance(node, list):
        return [n for v in node for n in _resume_names(v)]
    return []
