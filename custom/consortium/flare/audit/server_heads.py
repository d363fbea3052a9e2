"""The server's half of the trail cross-anchoring (:mod:`consortium.audit.anchors`), in the server
*job* process: each site head a result carries goes into the server's trail
(``<server workspace>/audit/trail.jsonl``, signed with ``startup/server.key``), and each task
carries the server trail's head to the site.

* ``BEFORE_TASK_RESULT_FILTER`` (before any server filter, with the result as the site sent it):
  a ``site_head`` record (site as FLARE authenticated it, job, task, task id, return code, the
  head's record number and hash), or ``site_head_missing`` (a withheld result, with the reason the
  site gave, e.g. "audit trail not writable at cleveland"; a site without its audit component).
  A head that cannot be recorded stops the job (``system_panic``): no result is aggregated
  unanchored.
* ``AFTER_TASK_DATA_FILTER``: the header :data:`~consortium.audit.anchors.SERVER_HEAD_HEADER` of
  the task data holds the server trail's head; the site keeps it in its ``task_received`` line.

Where it is declared: :data:`consortium.flare.kit_policies.DECLARATION`, a ``startup/*__j_resources.json`` of the server kit
(signed with the kit). FLARE builds the components of ``*__j_resources.json`` in the job process
only (nvflare 2.9.0 ``Workspace.get_config_files_for_startup``) but never registers them as the
run's event handlers: there they only see ``BEFORE_BUILD_COMPONENT``. So the component, when
built, wraps ``FederatedServer.create_run_manager`` (which ``start_run`` calls to make the run's
handler list) to add itself to that list. Pinned like :mod:`consortium.flare.audit.server`: the
installed FLARE and the SHA-256 of both methods' sources must be the checked ones, else the
component raises and the job does not start (fail closed).
"""

from __future__ import annotations

import threading
from pathlib import Path

from nvflare.apis.event_type import EventType
from nvflare.apis.fl_component import FLComponent
from nvflare.apis.fl_constant import FLContextKey, ProcessType, ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable
from nvflare.private.fed.server.fed_server import FederatedServer

from consortium.audit.anchors import SERVER_HEAD_HEADER, SITE_HEAD_HEADER, head_value, site_head_record
from consortium.audit.chain import AuditTrail
from consortium.audit.signing import kit_signer
from consortium.flare.audit.server import PatchGuardError, pin_problems
from consortium.protocol.site_result import REFUSAL_HEADER

PINNED_SOURCES = {  # dotted name -> SHA-256 of inspect.getsource(), nvflare 2.9.0, read by hand
    "nvflare.private.fed.server.fed_server.FederatedServer.create_run_manager":
        "77a777c511d174c54b558d267b4b5483ed21a794959c777c9f5c3c450a883d1b",
    "nvflare.private.fed.server.fed_server.FederatedServer.start_run":
        "77c4a97cf8c8e5ab2a6f37f5ab8fccbaced52e5f86472c6db2f59fa4a2d7dd2c",
}

_ORIGINAL = FederatedServer.create_run_manager
_handlers: list[FLComponent] = []
_lock = threading.Lock()


def install_run_hook(component: FLComponent) -> None:
    """Make ``component`` a handler of every run this process starts; PatchGuardError when the
    installed FLARE is not the pinned one."""
    problems = pin_problems(pins=PINNED_SOURCES)
    if problems:
        raise PatchGuardError("trail heads not anchored, so the job must not run: " + "; ".join(problems))

    def create_run_manager(self, workspace, job_id):
        run_manager = _ORIGINAL(self, workspace, job_id)
        for handler in list(_handlers):
            if handler not in run_manager.handlers:
                run_manager.add_handler(handler)
        return run_manager

    with _lock:
        if component not in _handlers:
            _handlers.append(component)
        FederatedServer.create_run_manager = create_run_manager


def uninstall_run_hook() -> None:
    with _lock:
        _handlers.clear()
        FederatedServer.create_run_manager = _ORIGINAL


class ServerTrailHeads(FLComponent):
    def __init__(self, folder: str = "audit", workspace: str | None = None) -> None:
        """Args: folder: the server trail's folder, relative to the server workspace (the job
        process runs in it) or absolute; workspace: the server workspace (None: the current folder)."""
        super().__init__()
        if not isinstance(folder, str) or not folder:
            raise ValueError(f"ServerTrailHeads arg folder = {folder!r}: must be a folder name")
        root = Path(workspace) if workspace else Path.cwd()
        self.trail = AuditTrail(root / folder if not Path(folder).is_absolute() else Path(folder),
                                signer=kit_signer(root))
        install_run_hook(self)

    def handle_event(self, event_type: str, fl_ctx: FLContext) -> None:
        if fl_ctx.get_prop(FLContextKey.PROCESS_TYPE) not in (ProcessType.SERVER_JOB, None):
            return
        if event_type == EventType.BEFORE_TASK_RESULT_FILTER:
            self.record_head(fl_ctx)
        elif event_type == EventType.AFTER_TASK_DATA_FILTER:
            self.send_head(fl_ctx)

    def record_head(self, fl_ctx: FLContext) -> None:
        result = fl_ctx.get_prop(FLContextKey.TASK_RESULT)
        peer = fl_ctx.get_peer_context()
        site = peer.get_identity_name() if peer is not None else "?"
        shareable = result if isinstance(result, Shareable) else Shareable()
        rc = shareable.get_return_code(ReturnCode.OK) if isinstance(result, Shareable) else "no result"
        record = site_head_record(site, fl_ctx.get_job_id(), fl_ctx.get_prop(FLContextKey.TASK_NAME),
                                  fl_ctx.get_prop(FLContextKey.TASK_ID), shareable.get_header(SITE_HEAD_HEADER), rc,
                                  shareable.get_header(REFUSAL_HEADER))
        try:
            self.trail.append(record)
        except Exception as e:  # a head the server cannot keep: the job stops
            self.log_error(fl_ctx, f"server audit trail {self.trail.path}: {site}'s trail head not recorded ({e})")
            self.system_panic(f"server audit trail: {site}'s trail head not recorded", fl_ctx)

    def send_head(self, fl_ctx: FLContext) -> None:
        data = fl_ctx.get_prop(FLContextKey.TASK_DATA)
        if not isinstance(data, Shareable):
            return
        try:
            end = self.trail.end()
        except Exception as e:  # the task goes without it; the site records server_head None
            self.log_error(fl_ctx, f"server audit trail {self.trail.path}: its head cannot be read ({e})")
            return
        if end is not None:
            data.set_header(SERVER_HEAD_HEADER, head_value(end))
