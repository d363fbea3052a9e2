"""What the server adds to its own hash-chained trail (``<server workspace>/audit/trail.jsonl``,
the same chain as a site's, :mod:`consortium.audit.chain`): admin commands FLARE refused, jobs
refused at deployment, and each finished job's FLARE audit log, kept under
``audit/jobs/<job_id>/audit.log`` with its SHA-256 in the trail. No FLARE imports here.

Record kinds (field ``event``):

* ``server_audit_started``: the server audit component was built (FLARE version, what it patched);
* ``admin_command_denied``: ``user``, ``org``, ``role``, ``command`` (at most :data:`MAX_COMMAND`
  characters), ``outcome`` (``not_authorized``: the policy said no; ``refused``: the command was
  refused before the policy was asked, e.g. no such job) and ``reason`` (FLARE's reply);
* ``job_refused``: ``job_id``, ``status``, ``detail`` (FLARE's deployment detail, per site);
* ``job_audit_kept``: ``job_id``, ``file`` (relative to the audit folder), ``sha256``, ``bytes``;
  ``job_audit_missing``: ``job_id``, ``reason``.

A kept file is bound to the trail by its digest: :func:`kept_file_problems` names every kept file
that is missing or no longer has the digest its line records.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from pathlib import Path

from consortium.audit.chain import TRAIL_FILE, parse_line
from consortium.fileio import atomic_write

JOBS_FOLDER = "jobs"
JOB_AUDIT_FILE = "audit.log"  # nvflare WorkspaceConstants.AUDIT_LOG
MAX_COMMAND = 500
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def denial_record(user: str, org: str, role: str, command: str, outcome: str, reason: str) -> dict:
    """The trail record of one refused admin command; ValueError for an unknown ``outcome``."""
    if outcome not in ("not_authorized", "refused"):
        raise ValueError(f"outcome = {outcome!r}: must be 'not_authorized' or 'refused'")
    return {"event": "admin_command_denied", "user": str(user), "org": str(org), "role": str(role),
            "command": str(command)[:MAX_COMMAND], "outcome": outcome, "reason": str(reason)}


def job_refused_record(job_id: str, status: str, detail) -> dict:
    return {"event": "job_refused", "job_id": _checked_job_id(job_id), "status": str(status),
            "detail": [str(d) for d in detail] if isinstance(detail, list | tuple) else str(detail)}


def _checked_job_id(job_id: str) -> str:
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id) or ".." in job_id:
        raise ValueError(f"job_id = {job_id!r}: not a job id (letters, digits, '.', '_', '-')")
    return job_id


def audit_log_from_archive(archive: bytes, name: str = JOB_AUDIT_FILE) -> bytes | None:
    """The ``name`` member at the top of a job's workspace archive (a zip, as FLARE's job store
    keeps it); None when the archive has none. ValueError for bytes that are not a zip."""
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as z:
            return z.read(name) if name in z.namelist() else None
    except zipfile.BadZipFile as e:
        raise ValueError(f"job workspace archive is not a zip: {e}") from None


def keep_job_audit(folder: Path, job_id: str, data: bytes) -> dict:
    """Write ``data`` as ``<folder>/jobs/<job_id>/audit.log`` (atomically) and return the trail
    record that binds it (its SHA-256 and size)."""
    rel = Path(JOBS_FOLDER) / _checked_job_id(job_id) / JOB_AUDIT_FILE
    path = Path(folder) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)
    return {"event": "job_audit_kept", "job_id": job_id, "file": rel.as_posix(),
            "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def kept_file_problems(folder: Path) -> list[str]:
    """Each file a ``job_audit_kept`` line of ``<folder>/trail.jsonl`` binds that is missing or
    whose SHA-256 differs (the last line for a file counts). Run it on a verified trail."""
    folder = Path(folder)
    trail = folder / TRAIL_FILE
    if not trail.exists():
        return []
    kept: dict[str, tuple[int, str]] = {}
    for n, line in enumerate(trail.read_text(encoding="ascii", errors="replace").splitlines(), 1):
        record = parse_line(line)["record"]
        if record.get("event") == "job_audit_kept":
            kept[str(record.get("file"))] = (n, str(record.get("sha256")))
    problems = []
    for rel, (n, digest) in sorted(kept.items()):
        path = folder / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            problems.append(f"{trail} line {n}: kept file {rel!r} is outside {folder}")
        elif not path.is_file():
            problems.append(f"{path}: missing (kept at {trail} line {n})")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(f"{path}: changed: its SHA-256 is not the one {trail} line {n} records")
    return problems
