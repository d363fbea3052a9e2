"""The server's own audit: refused admin commands, jobs refused at deployment, and each job's
FLARE audit log kept after FLARE deletes the job's run folder, all in the server's hash-chained
trail ``<server workspace>/audit/trail.jsonl`` (records: :mod:`consortium.audit.server_trail`;
``consortium audit verify SERVER_WORKSPACE`` checks the chain and every kept file's digest).

Where it is declared: ``startup/consortium_audit__p_resources.json`` of the server kit, written by
:class:`consortium.provisioning.builders.site_policies.SitePoliciesBuilder` before FLARE signs the kit. FLARE
builds the components of ``*__p_resources.json`` in the server *parent* process only (the one that
runs the admin commands and the job runner), while ``server_train`` has ``chdir``-ed into the
workspace, and in secure mode refuses to start when that file is unsigned or altered. Every line
is signed with the server's kit key (``startup/server.key``, :mod:`consortium.audit.signing`); a
kit whose key cannot be read stops the server. The job process's half (the sites' trail heads) is
:mod:`consortium.flare.audit.server_heads`.

**Denied admin commands (a patch of FLARE, pinned to nvflare 2.9.0).** FLARE's admin command chain
is ``LoginModule -> AuthzFilter -> CommandAudit -> handler`` (``FedAdminServer.__init__``);
``CommandAudit`` writes ``[E:..][U:user][A:command]`` to ``audit.log``, but a command that
``AuthzFilter.pre_command`` refuses stops the chain before it and FLARE records nothing. FLARE has
no hook there, so this module replaces ``AuthzFilter.pre_command`` (on the class: the server's one
instance, already built or not, uses it) with a wrapper that calls FLARE's own method unchanged and,
when it returns False, appends an ``admin_command_denied`` line to the chained trail and a
``[DENIED]`` line to FLARE's ``audit.log``. The wrapper relies on what that method does in 2.9.0:
it returns False exactly when it refuses, after ``conn.append_error(reason)``.

The pin guard (:data:`PINNED_NVFLARE`, :data:`PINNED_SOURCES`): before patching, the installed
nvflare version and the SHA-256 of the source of ``AuthzFilter.pre_command`` and of
``FedAdminServer.__init__`` (which installs the filter chain) must be the ones this was checked
against. **Fail closed**: otherwise the component raises, FLARE's configuration fails and the server
does not start, naming what changed: a consortium server never runs without recording denials.
Upgrading FLARE means re-reading both methods, then updating the pins (``tests/flare/
test_server_audit_guard.py`` fails first, on the upgraded environment).

**Job audit logs.** FLARE's job runner archives a finished job's run folder (with its per-job
``audit.log``) into the job store and deletes it (``JobRunner._save_workspace``) before it fires
any event: no event fires between the job process's end and the deletion, and ``JOB_COMPLETED``
comes after it. So on ``JOB_COMPLETED`` this component reads ``audit.log`` back from the archive
(``job_manager.get_storage_component(job_id, "workspace")``, FLARE's job store API), keeps it under
``audit/jobs/<job_id>/`` and chains its digest. A job whose archive holds no audit log is recorded
as ``job_audit_missing``; a job that failed to deploy (``JOB_ABORTED`` with status
``FINISHED:FAILED_TO_RUN``, e.g. custom code refused by the BYOC policy) as ``job_refused``.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import logging
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from nvflare.apis.event_type import EventType
from nvflare.apis.fl_component import FLComponent
from nvflare.apis.fl_constant import FLContextKey, SystemComponents
from nvflare.apis.fl_context import FLContext
from nvflare.apis.job_def import JobMetaKey, RunStatus
from nvflare.fuel.hci.proto import MetaKey, MetaStatusValue, ProtoKey
from nvflare.fuel.hci.server.authz import AuthzFilter
from nvflare.fuel.hci.server.constants import ConnProps
from nvflare.fuel.sec.audit import AuditService

from consortium.audit.chain import AuditTrail
from consortium.audit.server_trail import (
    audit_log_from_archive,
    denial_record,
    job_refused_record,
    keep_job_audit,
)
from consortium.audit.signing import kit_signer

PINNED_NVFLARE = "2.9.0"
PINNED_SOURCES = {  # dotted name -> SHA-256 of inspect.getsource(), as read and checked by hand
    "nvflare.fuel.hci.server.authz.AuthzFilter.pre_command":
        "6896491f0b84ea20029de922624d99fb3e3cbecda6db374c0a43ac041efeb81c",
    "nvflare.private.fed.server.admin.FedAdminServer.__init__":
        "b5e6a3adb268724664e5f97390164fc3d816a4dc868cc1c3660e8086b72e8b83",
}
WORKSPACE_COMPONENT = "workspace"  # nvflare.apis.storage.WORKSPACE

log = logging.getLogger(__name__)


class PatchGuardError(RuntimeError):
    """The installed FLARE is not the one the denial-audit patch was checked against."""


def _resolve(dotted: str):
    """The object a dotted name names (its longest importable prefix, then attributes)."""
    parts = dotted.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def source_sha256(obj) -> str:
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()


def pin_problems(version: str | None = None, pins: Mapping[str, str] = PINNED_SOURCES) -> list[str]:
    """What differs from what the patch was checked against (empty: safe to patch)."""
    import nvflare

    found = nvflare.__version__ if version is None else version
    problems = [] if found == PINNED_NVFLARE else [f"nvflare {found} is installed; the patch is checked against {PINNED_NVFLARE}"]
    for name, digest in pins.items():
        try:
            actual = source_sha256(_resolve(name))
        except (ImportError, AttributeError, OSError, TypeError) as e:
            problems.append(f"{name}: cannot be read ({e})")
            continue
        if actual != digest:
            problems.append(f"{name}: source SHA-256 {actual}, checked {digest}")
    return problems


_ORIGINAL = AuthzFilter.pre_command
_install_lock = threading.Lock()


def _refusal(conn, errors_before: int) -> tuple[str, str]:
    """(outcome, reason) from what FLARE's pre_command appended to the reply."""
    data = conn.buffer.data[errors_before:]
    reasons = [str(d.get(ProtoKey.DATA, "")) for d in data if isinstance(d, dict) and d.get(ProtoKey.TYPE) == ProtoKey.ERROR]
    status = conn.buffer.meta.get(MetaKey.STATUS)
    return ("not_authorized" if status == MetaStatusValue.NOT_AUTHORIZED else "refused"), "; ".join(reasons) or "refused"


def install_denial_audit(record: Callable[[dict], None]) -> None:
    """Wrap ``AuthzFilter.pre_command`` so each refusal is passed to ``record`` (a trail record);
    PatchGuardError when the installed FLARE is not the pinned one. Installing again replaces
    ``record``."""
    problems = pin_problems()
    if problems:
        raise PatchGuardError("denial audit not installed, so the server must not run: " + "; ".join(problems))

    def pre_command(self, conn, args):
        before = len(conn.buffer.data)
        ok = _ORIGINAL(self, conn, args)
        if not ok:
            outcome, reason = _refusal(conn, before)
            rec = denial_record(conn.get_prop(ConnProps.USER_NAME, ""), conn.get_prop(ConnProps.USER_ORG, ""),
                                conn.get_prop(ConnProps.USER_ROLE, ""), conn.command or " ".join(args), outcome, reason)
            try:
                record(rec)
            except Exception:  # the command stays refused; the failure is logged loudly
                log.exception("could not record a denied admin command in the server audit trail: %s", rec)
        return ok

    pre_command.consortium_denial_audit = True
    with _install_lock:
        AuthzFilter.pre_command = pre_command


def uninstall_denial_audit() -> None:
    with _install_lock:
        AuthzFilter.pre_command = _ORIGINAL


def denial_audit_installed() -> bool:
    return getattr(AuthzFilter.pre_command, "consortium_denial_audit", False)


class ServerAuditTrail(FLComponent):
    def __init__(self, folder: str = "audit"):
        """Args: folder: the trail's folder, relative to the server workspace (``server_train``
        runs in it) or absolute."""
        super().__init__()
        if not isinstance(folder, str) or not folder:
            raise ValueError(f"ServerAuditTrail arg folder = {folder!r}: must be a folder name")
        self.folder = Path(folder).resolve()
        self.trail = AuditTrail(self.folder, signer=kit_signer(Path.cwd()))  # KitKeyError: the server does not start
        self._lock = threading.Lock()
        signed = _check_own_policies(Path.cwd())
        install_denial_audit(self.record_denial)
        self.append({"event": "server_audit_started", "nvflare": PINNED_NVFLARE, "pid": os.getpid(),
                     "patched": sorted(PINNED_SOURCES), "policies_signed": signed})

    def append(self, record: dict) -> int:
        with self._lock:
            return self.trail.append(record).seq

    def record_denial(self, record: dict) -> None:
        """The chained line first, then FLARE's ``audit.log`` line (``[R:]`` names the chained
        line), which is written even when the trail cannot be (the error is raised after it)."""
        try:
            ref, error = f"audit/trail.jsonl#{self.append(record)}", None
        except Exception as e:
            ref, error = "audit/trail.jsonl: NOT RECORDED", e
        AuditService.add_event(user=record["user"] or "?", action=record["command"][:100], ref=ref,
                               msg=f"[DENIED][O:{record['org']}][Role:{record['role']}] {record['reason']}")
        if error is not None:
            raise error

    def handle_event(self, event_type: str, fl_ctx: FLContext):
        if event_type not in (EventType.JOB_COMPLETED, EventType.JOB_ABORTED):
            return
        job_id = (fl_ctx.get_prop(FLContextKey.EVENT_DATA) or {}).get(JobMetaKey.JOB_ID.value)
        if not job_id:
            self.log_error(fl_ctx, f"{event_type} without a job id: nothing recorded in {self.trail.path}")
            return
        try:
            job_manager = fl_ctx.get_engine().get_component(SystemComponents.JOB_MANAGER)
            if event_type == EventType.JOB_ABORTED:
                self._record_refusal(job_manager, job_id, fl_ctx)
            else:
                self._keep_job_audit(job_manager, job_id, fl_ctx)
        except Exception as e:
            self.log_exception(fl_ctx, f"server audit trail {self.trail.path}: job {job_id}: {e}")

    def _record_refusal(self, job_manager, job_id: str, fl_ctx: FLContext) -> None:
        meta = job_manager.get_job(job_id, fl_ctx).meta
        if meta.get(JobMetaKey.STATUS.value) == RunStatus.FAILED_TO_RUN.value:
            self.append(job_refused_record(job_id, meta.get(JobMetaKey.STATUS.value),
                                           meta.get(JobMetaKey.JOB_DEPLOY_DETAIL.value, [])))

    def _keep_job_audit(self, job_manager, job_id: str, fl_ctx: FLContext) -> None:
        try:
            archive = job_manager.get_storage_component(job_id, WORKSPACE_COMPONENT, fl_ctx)
            data = audit_log_from_archive(archive) if archive else None
            reason = "the job's workspace archive has no audit.log"
        except Exception as e:
            data, reason = None, f"the job's workspace archive cannot be read: {e}"
        if data is None:
            self.append({"event": "job_audit_missing", "job_id": job_id, "reason": reason})
            return
        self.append(keep_job_audit(self.folder, job_id, data))


def _check_own_policies(workspace: Path) -> bool:
    """In a signed server kit, RuntimeError unless its local policies are the signed ones
    (FLARE checks startup/ only); False for an unsigned kit (FLARE signs only HE and CC kits)."""
    if not (workspace / "startup" / "signature.json").is_file():
        return False
    from consortium.flare.kit_policies import policy_signature_problems

    problems = policy_signature_problems(workspace)
    if problems:
        raise RuntimeError("server site policies are not the signed ones: " + "; ".join(problems))
    return True
