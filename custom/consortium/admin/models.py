"""The model registry from the admin's side: list a job's versions, pick the best, start a new job
from any version (rollback), continue a job whose server died (resume), and clear the record
FLARE leaves RUNNING for a job its dead server was running.

    consortium models list RUN            every version: score, round, contributors, SHA-256
    consortium models best RUN            the version with the best pooled score
    consortium models rollback RUN V      a job folder that starts from version V (optionally submitted)
    consortium job resume JOB_ID              the POC job a dead server was running, from its last version

RUN is a downloaded job result (``results/<job id>``) or a job's run folder on the server.
The new job is the old job's own configuration (from its run folder) with the version's file
inside it (``app/resume/``), its SHA-256 checked by the persistor and the aggregator before use,
the round counter continuing from the version, and FedNova's server-momentum velocity restored.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

from consortium.fileio import path_under
from consortium.names import check_name
from consortium.registry import ciphertext
from consortium.registry.store import ModelRegistry, RegistryEntry, RegistryError, load_arrays, sha256_of

RESUMABLE_PERSISTOR = "consortium.flare.model_registry.ResumablePTPersistor"
PLAIN_PERSISTORS = (RESUMABLE_PERSISTOR, "nvflare.app_opt.pt.file_model_persistor.PTFileModelPersistor")
META_KEYS = ("resource_spec", "deploy_map", "min_clients")
ROLLBACK_DIR = Path("jobs-rollback")


def job_name(run: Path, meta: dict) -> str:
    """The job's ``meta.json`` ``name`` (default ``job``), checked against FLARE's job name rule:
    it becomes a folder name, and it is the job author's, not ours."""
    return check_name("job", meta.get("name", "job"), f"{_run_dir(run) / 'meta.json'}: field 'name'")


def rollback_folder(run: Path, version: int, root: Path = ROLLBACK_DIR) -> Path:
    """``<root>/<name>_v<version>`` for the job of ``run``, resolved and checked to lie in ``root``."""
    return path_under(root, f"{job_name(run, job_config(run)[0])}_v{int(version)}")


def _run_dir(run: Path) -> Path:
    run = Path(run)
    return run / "workspace" if (run / "workspace").is_dir() else run


def _by_id(items: list[dict], ident: str, where: Path) -> dict:
    """The component or workflow ``ident`` of ``items``, with an ``args`` mapping; RegistryError naming the file otherwise."""
    found = next((c for c in items if isinstance(c, dict) and c.get("id") == ident), None) if isinstance(items, list) else None
    if found is None:
        raise RegistryError(f"{where}: no component or workflow with id {ident!r}")
    if not isinstance(found.setdefault("args", {}), dict):
        raise RegistryError(f"{where}: {ident!r} field 'args' = {found['args']!r}: must be a mapping")
    return found


def job_config(run: Path) -> tuple[dict, dict, dict]:
    """(meta, server config, client config) of the job that ran in ``run``."""
    ws = _run_dir(run)
    config = ws / "app_server" / "config"
    paths = (ws / "meta.json", config / "config_fed_server.json", config / "config_fed_client.json")
    for p in paths:
        if not p.is_file():
            raise RegistryError(f"{p}: missing; {run} is not a job's run folder or downloaded result")
    from consortium.provisioning.project import read_json  # a JSON object, or an error naming the file and line

    return tuple(read_json(p) for p in paths)


def planned_end(server: dict, where: Path) -> int:
    """The round after the job's last planned round (start_round + num_rounds)."""
    sag = _by_id(server.get("workflows"), "scatter_and_gather", where)["args"]
    try:
        return int(sag.get("start_round", 0)) + int(sag["num_rounds"])
    except (KeyError, TypeError, ValueError):
        raise RegistryError(f"{where}: scatter_and_gather args start_round = {sag.get('start_round')!r}, num_rounds = "
                            f"{sag.get('num_rounds')!r}: need whole numbers") from None


def continuation_job(run: Path, version: int, out: Path, rounds: int | None = None, label: str = "rollback") -> Path:
    """Write into ``out`` a job that starts from ``version`` of the job in ``run`` and runs
    ``rounds`` rounds (default: the rounds left of the original plan). Refuses an encrypted job,
    a version whose file fails its SHA-256, and a plan with no rounds left."""
    ws = _run_dir(run)
    registry = ModelRegistry.of_run(ws)
    entry = registry.get(version)
    load_arrays(registry.folder / entry.file, entry.sha256)  # refuse a corrupted file before writing anything
    meta, server, client = (copy.deepcopy(c) for c in job_config(ws))
    where = ws / "app_server" / "config" / "config_fed_server.json"
    persistor = _by_id(server.get("components"), "persistor", where)
    if persistor["path"] not in PLAIN_PERSISTORS:
        raise RegistryError(f"{where}: persistor {persistor['path']} cannot start from a registry version "
                            "(encrypted jobs keep no plaintext model)")
    end = planned_end(server, where)
    rounds = end - version if rounds is None else rounds
    if not isinstance(rounds, int) or rounds < 1:
        raise RegistryError(f"version {version} of {meta.get('name')} leaves {rounds} round(s) of the planned {end}; "
                            "give --rounds to train further")
    source = f"{meta.get('name')} job {meta.get('job_id', '?')} v{version} ({label})"
    target = f"resume/{entry.file}"
    persistor["path"] = RESUMABLE_PERSISTOR
    persistor["args"].update(resume_from=target, resume_sha256=entry.sha256, resume_source=source)
    if entry.has_state:
        _by_id(server.get("components"), "aggregator", where)["args"].update(resume_from=target, resume_sha256=entry.sha256)
    sag = _by_id(server.get("workflows"), "scatter_and_gather", where)["args"]
    sag.update(start_round=version, num_rounds=rounds)
    new_meta = {"name": f"{job_name(ws, meta)}_v{version}", **{k: meta[k] for k in META_KEYS if k in meta}}
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise RegistryError(f"{out}: exists and is not empty; choose a new folder for the job")
    (out / "app" / "config").mkdir(parents=True, exist_ok=True)
    (out / "app" / "resume").mkdir()
    shutil.copyfile(registry.folder / entry.file, out / "app" / target)
    (out / "meta.json").write_text(json.dumps(new_meta, indent=2) + "\n")
    (out / "app" / "config" / "config_fed_server.json").write_text(json.dumps(server, indent=2) + "\n")
    (out / "app" / "config" / "config_fed_client.json").write_text(json.dumps(client, indent=2) + "\n")
    return out


def clear_stuck_record(storage_root: Path, job_id: str, reason: str) -> str:
    """Mark ``job_id``'s record in FLARE's job store FINISHED:ABORTED when it still says RUNNING
    (its server died with it: FLARE's ``abort`` and ``delete`` refuse such a record). Returns the
    status the record had."""
    from nvflare.apis.job_def import JobMetaKey, RunStatus
    from nvflare.app_common.storages.filesystem_storage import FilesystemStorage

    storage = FilesystemStorage(root_dir=str(storage_root))
    try:
        meta = storage.get_meta(job_id)
    except Exception as e:
        raise RegistryError(f"{storage_root}: no job record {job_id} ({e})") from e
    status = meta.get(JobMetaKey.STATUS.value, "")
    if status == RunStatus.RUNNING.value:
        storage.update_meta(job_id, {JobMetaKey.STATUS.value: RunStatus.FINISHED_ABORTED.value,
                                     "consortium_cleared": reason}, replace=False)
    return status


CIPHERTEXT_INDEX = Path(ciphertext.FOLDER) / ciphertext.INDEX  # an HE job's registry (consortium.registry.ciphertext)


def ciphertext_lines(run_dir: Path) -> list[str]:
    """An HE job's versions: each round's encrypted sum, its SHA-256 checked against the file, and
    who made it. The server cannot decrypt them; a site applies them in order to the initial model."""
    index = run_dir / CIPHERTEXT_INDEX
    lines = []
    for n, text in enumerate(index.read_text().splitlines(), 1):
        try:
            e = json.loads(text)
            digest = sha256_of(index.parent / e["file"])
        except (json.JSONDecodeError, KeyError, TypeError, OSError) as err:
            raise RegistryError(f"{index}: line {n}: {err}") from None
        ok = "ok" if digest == e.get("sha256") else "SHA-256 MISMATCH (altered or damaged)"
        made = f"  contributors {e['contributors']}" if "contributors" in e else ""
        rejected = f"  rejected {sorted(e['rejected'])}" if e.get("rejected") else ""
        lines.append(f"v{e.get('version', e['round'] + 1):04d}  round {e['round']}  {e['file']}  ciphertext only  "
                     f"sha256 {str(e.get('sha256'))[:12]} {ok}{made}{rejected}")
    return lines


def list_lines(run: Path) -> list[str]:
    if (_run_dir(run) / CIPHERTEXT_INDEX).is_file():
        return ciphertext_lines(_run_dir(run))
    registry = ModelRegistry.of_run(_run_dir(run))
    entries = registry.entries()
    if not entries:
        raise RegistryError(f"{registry.index}: the registry is empty")
    return [e.line() for e in entries]


def best(run: Path) -> RegistryEntry:
    return ModelRegistry.of_run(_run_dir(run)).best()
