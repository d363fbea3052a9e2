"""The site's audit trail in FLARE: a thin adapter that writes :mod:`consortium.audit.chain` lines.

:class:`SiteAuditTrail` is declared in the site's ``local/privacy.json`` ``components`` (added by
:func:`consortium.provisioning.privacy_scopes.site_privacy_policy` to every site's policy, so no job and no
policy template can leave it out); FLARE adds such components to every job run at the site as
event handlers. It writes ``<site workspace>/audit/trail.jsonl``, one line per event below, with
digests and metadata only, never data values or weights.

Events (nvflare 2.9.0, ``private/fed/client/client_runner.py``):

* ``START_RUN``: ``job_started`` (job, site, privacy scope).
* ``BEFORE_TASK_DATA_FILTER``, the first event after a task arrives, before any filter:
  ``task_received`` (task name and id, round, SHA-256 of the task data as received).
* ``AFTER_TASK_RESULT_FILTER``, fired after the site's scope filters *and* the job's filters
  (the HE encrypt filter is a job filter, so a site-scope filter would not see the final result),
  with the very Shareable that is then sent (FLARE only adds transport headers: task id, audit
  event id, message id): ``result_sent`` (return code OK), ``result_refused`` (a filter refused
  the release and says why, e.g. the DP budget) or ``result_error`` (another return code, e.g. the
  executor failed). Each holds the filters that ran (class and source, site or job), the DP ε
  the result declares (``dp_epsilon``), whether it is an HE ciphertext (``consortium_he``), the
  return code and the SHA-256 of its content (:func:`consortium.audit.digest.content_sha256` of
  the Shareable without its headers).
* ``BEFORE_SEND_TASK_RESULT`` for a task whose result never reached ``AFTER_TASK_RESULT_FILTER``
  (the executor or a filter raised; FLARE then sends an error code without data): ``task_failed``.
* ``END_RUN``: ``job_ended``.

Signed and anchored (:mod:`consortium.audit.signing`, :mod:`consortium.audit.anchors`): in a
provisioned site kit every line is signed with the site's kit key (``startup/client.key``); a kit
whose key cannot be read writes nothing (the job stops, as below). Without a kit (FLARE's
simulator) lines are unsigned and ``audit verify`` says so. Every result that leaves carries the
head of the trail after its own ``result_*`` line in the header :data:`SITE_HEAD_HEADER` (the
server records it); every ``task_received`` line keeps the server trail head the task carried
(``server_head``, None when the server sent none).

Fail closed: FLARE logs and swallows a handler's exception, so the component acts itself. If the
``result_*`` line cannot be written (disk, permissions, a damaged trail, no kit key), or the result
cannot be digested, the result is emptied *in place* before FLARE sends it: only the return code
:data:`AUDIT_FAILED` and the reason "audit trail not writable at <site>" (the refusal header the
server's aggregator keeps in the round record) leave the site, and the job is stopped at the site
(``system_panic``) on ``AFTER_SEND_TASK_RESULT``, once that reply was sent: a panic before it
would make FLARE drop the reply. If ``job_started`` or ``task_received`` cannot be written, nothing
more is written and the next result is withheld the same way (the task's data stays at the site;
a DP charge for it stays charged). A line written whose head file could not be written is recorded (the error log
says so, naming the record): the next append writes that head first or appends nothing. A trail
whose end does not match its head file is never extended: the site trains no more until an admin has run
``consortium audit verify`` and moved the damaged trail aside (keep it as evidence).

At the server (the simulator copies one ``local/`` folder to every participant) it does nothing,
nor does an instance a job declares itself (only the site's, id :data:`SITE_AUDIT_ID`, writes).
Results sent outside tasks (aux messages, federated events such as metric streaming) do not pass
through the task result filters and are not recorded.
"""

from __future__ import annotations

import math
from pathlib import Path

from nvflare.apis.dxo import from_shareable
from nvflare.apis.event_type import EventType
from nvflare.apis.filter import FilterContextKey
from nvflare.apis.fl_component import FLComponent
from nvflare.apis.fl_constant import FilterKey, FLContextKey, ProcessType, ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import ReservedHeaderKey, Shareable
from nvflare.apis.utils.task_utils import get_filters
from nvflare.app_common.app_constant import AppConstants

from consortium.audit.anchors import SERVER_HEAD_HEADER, SITE_HEAD_HEADER, head_value, parse_head
from consortium.audit.chain import AuditTrail, HeadNotWritten, Link
from consortium.audit.digest import content_sha256
from consortium.audit.signing import kit_signer
from consortium.privacy.declaration import EPSILON_KEY
from consortium.protocol.site_result import REFUSAL_HEADER

AUDIT_FAILED = "AUDIT_FAILED"
SITE_AUDIT_ID = "site_audit"  # its component id in privacy.json (consortium.provisioning.privacy_scopes.AUDIT_COMPONENT)
HE_META_KEY = "consortium_he"  # consortium.flare.he.site.HE_META (not imported: it needs TenSEAL)
RESULT_FILTERS = "task_result_filters"  # FLARE's Scope.TASK_RESULT_FILTERS_NAME


def payload(shareable: Shareable) -> dict:
    """A Shareable's content without its headers: what :func:`content_sha256` is taken of."""
    return {k: v for k, v in shareable.items() if k != ReservedHeaderKey.HEADERS}


def withhold(shareable: Shareable, reason: str) -> None:
    """Empty ``shareable`` in place: only the return code AUDIT_FAILED and ``reason`` remain."""
    for key in list(payload(shareable)):
        del shareable[key]
    shareable.set_return_code(AUDIT_FAILED)
    shareable.set_header(REFUSAL_HEADER, reason)


class SiteAuditTrail(FLComponent):
    def __init__(self, folder: str = "audit") -> None:
        """Args: folder: the trail's folder, relative to the site workspace (or absolute)."""
        super().__init__()
        if not isinstance(folder, str) or not folder:
            raise ValueError(f"folder must be a non-empty path, got {folder!r}")
        self.folder = folder
        self._trail: AuditTrail | None = None
        self._declared_by_site: bool | None = None
        self._tasks: dict[str, dict] = {}  # task id -> what task_received recorded; popped by its result
        self._stop_after_send: str | None = None  # why the job stops once the withheld result is sent
        self._not_recorded: str | None = None  # why a job_started/task_received line is missing

    # -- helpers ---------------------------------------------------------------------------------
    def trail(self, fl_ctx: FLContext) -> AuditTrail:
        """The site's trail, signing with the kit key (KitKeyError: a kit whose key is unusable)."""
        if self._trail is None:
            root = Path(fl_ctx.get_engine().get_workspace().get_root_dir())
            folder = Path(self.folder)
            self._trail = AuditTrail(folder if folder.is_absolute() else root / folder, signer=kit_signer(root))
        return self._trail

    @staticmethod
    def _context(fl_ctx: FLContext) -> dict:
        return {"site": fl_ctx.get_identity_name(), "job": fl_ctx.get_job_id()}

    def _write(self, fl_ctx: FLContext, record: dict, stop=None) -> Link | None:
        """Append ``record``: the trail's new head; on failure log it, stop the job at this site
        (``stop``: how, default at once) and return None. A line whose head file failed is
        recorded: logged, and its head returned."""
        try:
            return self.trail(fl_ctx).append(record)
        except HeadNotWritten as e:
            self.log_error(fl_ctx, f"audit trail: {record.get('event')} recorded as record {e.link.seq}, but its head "
                                   f"file could not be written ({e.__cause__}); the next record writes it first")
            return e.link
        except Exception as e:  # disk, permissions, a damaged trail, no kit key, a record that is not JSON
            (stop or self._panic)(fl_ctx, f"audit trail: {record.get('event')} not recorded ({e})")
            return None

    def _panic(self, fl_ctx: FLContext, reason: str) -> None:
        self.log_error(fl_ctx, f"{reason}; stopping the job at this site")
        self.system_panic(reason, fl_ctx)

    def _hold(self, fl_ctx: FLContext, reason: str) -> None:
        """``job_started`` or ``task_received`` not recorded: nothing more is; the next result is withheld."""
        self.log_error(fl_ctx, f"{reason}; the next result is withheld and the job stops at this site")
        self._not_recorded = reason

    def _panic_after_send(self, fl_ctx: FLContext, reason: str) -> None:
        """Stop the job once the withheld result (with its reason) has been sent: a panic now would
        make FLARE abort the send (``ClientRunner._send_task_result`` checks the abort signal), and
        the server would see the site only as absent."""
        self.log_error(fl_ctx, f"{reason}; withheld, stopping the job at this site once the server has the reason")
        self._stop_after_send = reason

    @staticmethod
    def _filters(fl_ctx: FLContext, task: str) -> list[dict]:
        """The result filters FLARE ran for ``task``: the site scope's, then the job's."""
        runner = fl_ctx.get_prop(FLContextKey.RUNNER)
        configured = getattr(runner, "task_result_filters", None) or {}
        return [{"filter": f"{type(f).__module__}.{type(f).__qualname__}", "source": f.get_prop(FilterContextKey.SOURCE)}
                for f in get_filters(RESULT_FILTERS, fl_ctx, configured, task, FilterKey.OUT)]

    # -- events ----------------------------------------------------------------------------------
    def handle_event(self, event_type: str, fl_ctx: FLContext) -> None:
        if fl_ctx.get_prop(FLContextKey.PROCESS_TYPE) != ProcessType.CLIENT_JOB:
            return  # the server, or a site's parent process: not a job at a site
        if self._declared_by_site is None:
            self._declared_by_site = fl_ctx.get_engine().get_component(SITE_AUDIT_ID) is self
            if not self._declared_by_site:
                self.log_warning(fl_ctx, "a SiteAuditTrail not declared by the site's privacy.json (a job's?) "
                                         "does not write the site's trail")
        if not self._declared_by_site:
            return
        if event_type == EventType.START_RUN:
            self._write(fl_ctx, {"event": "job_started", **self._context(fl_ctx),
                                 "scope": fl_ctx.get_prop(FLContextKey.EFFECTIVE_JOB_SCOPE_NAME)}, stop=self._hold)
        elif event_type == EventType.BEFORE_TASK_DATA_FILTER:
            self.task_received(fl_ctx)
        elif event_type == EventType.AFTER_TASK_RESULT_FILTER:
            self.result_leaving(fl_ctx)
        elif event_type == EventType.BEFORE_SEND_TASK_RESULT:
            task_id = fl_ctx.get_prop(FLContextKey.TASK_ID)
            task = self._tasks.pop(task_id, None)
            if self._not_recorded:
                self._stop_after_send = self._not_recorded
            elif task is not None:
                self._write(fl_ctx, {**task, "event": "task_failed",
                                     "detail": "no result passed the filters; FLARE sends an error code without data"},
                            stop=self._panic_after_send)
        elif event_type == EventType.AFTER_SEND_TASK_RESULT and self._stop_after_send:
            reason, self._stop_after_send = self._stop_after_send, None
            self.system_panic(reason, fl_ctx)
        elif event_type == EventType.END_RUN and not self._not_recorded:
            self._write(fl_ctx, {"event": "job_ended", **self._context(fl_ctx)})

    def task_received(self, fl_ctx: FLContext) -> None:
        data = fl_ctx.get_prop(FLContextKey.TASK_DATA)
        task = {**self._context(fl_ctx), "task": fl_ctx.get_prop(FLContextKey.TASK_NAME),
                "task_id": fl_ctx.get_prop(FLContextKey.TASK_ID), "round": None}
        record = {"event": "task_received", **task, "data_sha256": None, "server_head": None}
        if isinstance(data, Shareable):
            carried = parse_head(data.get_header(SERVER_HEAD_HEADER))
            record["server_head"] = head_value(carried) if carried else None
            task["round"] = record["round"] = _round(data.get_header(AppConstants.CURRENT_ROUND))
            try:
                record["data_sha256"] = content_sha256(payload(data))
            except TypeError as e:  # nothing leaves here: record why there is no digest
                record["digest_error"] = str(e)
        self._tasks[task["task_id"]] = task
        if not self._not_recorded:
            self._write(fl_ctx, record, stop=self._hold)

    def result_leaving(self, fl_ctx: FLContext) -> None:
        result = fl_ctx.get_prop(FLContextKey.TASK_RESULT)
        task_name, task_id = fl_ctx.get_prop(FLContextKey.TASK_NAME), fl_ctx.get_prop(FLContextKey.TASK_ID)
        task = self._tasks.pop(task_id, None) or {**self._context(fl_ctx), "task": task_name, "task_id": task_id,
                                                  "round": None}
        if not isinstance(result, Shareable):
            self._panic(fl_ctx, f"audit trail: task {task_name} has no result to record")
            return
        if self._not_recorded:  # its task, or the job's start, is not in the trail: nothing leaves
            withhold(result, f"audit trail not writable at {task['site']}")
            self._stop_after_send = self._not_recorded
            return
        try:
            record = {**task, **self.describe(result, fl_ctx, task_name)}
        except Exception as e:  # e.g. a type the digest does not know: it does not leave unrecorded
            withhold(result, f"the result of {task_name} cannot be digested for the audit trail at {task['site']}")
            self._panic_after_send(fl_ctx, f"audit trail: the result of {task_name} cannot be digested ({e})")
            return
        head = self._write(fl_ctx, record, stop=self._panic_after_send)
        if head is None:
            withhold(result, f"audit trail not writable at {task['site']}")
        else:
            result.set_header(SITE_HEAD_HEADER, head_value(head))  # after the line: not in its digest

    def describe(self, result: Shareable, fl_ctx: FLContext, task_name: str) -> dict:
        """What a result's line says about it: outcome, return code, filters, ε, HE, digest."""
        content = payload(result)
        rc = result.get_return_code(ReturnCode.OK)
        meta: dict = {}
        if content:
            try:
                meta = from_shareable(result).meta or {}
            except Exception:  # not a DXO: no DXO meta to report
                meta = {}
        reason = result.get_header(REFUSAL_HEADER)
        event = "result_sent" if rc == ReturnCode.OK else "result_refused" if reason else "result_error"
        record = {"event": event, "return_code": rc,
                  "filters": self._filters(fl_ctx, task_name),
                  "dp_epsilon": _number(meta.get(EPSILON_KEY)), "he": meta.get(HE_META_KEY) is not None,
                  "result_sha256": content_sha256(content)}
        if reason:
            record["refusal"] = str(reason)
        return record


def _number(value) -> float | None:
    """``value`` as a finite float for a JSON line (None when it is none)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _round(value) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None
