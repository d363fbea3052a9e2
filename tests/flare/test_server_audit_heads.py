"""The server job process's half of the cross-anchoring (consortium.flare.audit.server_heads), with FLARE's
own objects: each result's site trail head is written, signed, into the server's trail; each task
carries the server trail's head; FLARE loads the declaration in job processes only, and the
component makes itself a handler of the run through the pinned hook."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from nvflare.apis.event_type import EventType
from nvflare.apis.fl_constant import FLContextKey, ProcessType, ReservedKey, ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable
from nvflare.apis.workspace import Workspace
from nvflare.private.fed.server.fed_server import FederatedServer

from consortium.audit.anchors import SERVER_HEAD_HEADER, SITE_HEAD_HEADER
from consortium.audit.chain import TRAIL_FILE
from consortium.audit.signing import kit_certificate
from consortium.audit.verify import verify_trail
from consortium.flare.audit import server_heads
from consortium.flare.audit.server import PatchGuardError
from consortium.flare.audit.server_heads import ServerTrailHeads
from consortium.flare.kit_policies import DECLARATION, HEADS_COMPONENT
from consortium.protocol.site_result import REFUSAL_HEADER

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "audit"))
from audit_kits import RootCA  # noqa: E402


class _Engine:
    def __init__(self):
        self.events = []

    def fire_event(self, event_type, fl_ctx):
        self.events.append(event_type)


@pytest.fixture
def kit(tmp_path):
    return RootCA().kit(tmp_path / "server", "server", server=True)


@pytest.fixture
def heads(kit):
    component = ServerTrailHeads(workspace=str(kit))
    yield component
    server_heads.uninstall_run_hook()


def ctx(**props) -> FLContext:
    fl_ctx = FLContext()
    peer = FLContext()
    peer.set_prop(ReservedKey.IDENTITY_NAME, "cleveland", private=False)
    fl_ctx.set_peer_context(peer)
    base = {ReservedKey.ENGINE: _Engine(), ReservedKey.RUN_NUM: "job1", FLContextKey.PROCESS_TYPE: ProcessType.SERVER_JOB,
            FLContextKey.TASK_NAME: "train", FLContextKey.TASK_ID: "t1"}
    for key, value in {**base, **props}.items():
        fl_ctx.set_prop(key, value, private=True, sticky=False)
    return fl_ctx


def records(kit) -> list[dict]:
    return [json.loads(x)["record"] for x in (kit / "audit" / TRAIL_FILE).read_text().splitlines()]


def test_a_results_site_head_goes_signed_into_the_servers_trail(heads, kit):
    result = Shareable()
    result.set_header(SITE_HEAD_HEADER, {"seq": 7, "hash": "cd" * 32})
    heads.handle_event(EventType.BEFORE_TASK_RESULT_FILTER, ctx(**{FLContextKey.TASK_RESULT: result}))

    assert records(kit) == [{"event": "site_head", "site": "cleveland", "job": "job1", "task": "train", "task_id": "t1",
                             "return_code": ReturnCode.OK, "seq": 7, "hash": "cd" * 32}]
    assert verify_trail(kit / "audit", kit_certificate(kit).public_key()).ok


def test_a_result_without_a_head_is_recorded_as_missing(heads, kit):
    withheld = Shareable()
    withheld.set_return_code("AUDIT_FAILED")
    withheld.set_header(REFUSAL_HEADER, "audit trail not writable at cleveland")
    heads.handle_event(EventType.BEFORE_TASK_RESULT_FILTER, ctx(**{FLContextKey.TASK_RESULT: withheld}))
    forged = Shareable()
    forged.set_header(SITE_HEAD_HEADER, {"seq": "7", "hash": "x"})
    heads.handle_event(EventType.BEFORE_TASK_RESULT_FILTER, ctx(**{FLContextKey.TASK_RESULT: forged}))

    missing, malformed = records(kit)
    assert missing["event"] == "site_head_missing" and missing["return_code"] == "AUDIT_FAILED"
    assert missing["refusal"] == "audit trail not writable at cleveland"  # the server's trail keeps why
    assert malformed["detail"] == "the result's trail head is malformed"


def test_a_task_carries_the_servers_trail_head(heads, kit):
    result = Shareable()
    result.set_header(SITE_HEAD_HEADER, {"seq": 1, "hash": "ab" * 32})
    heads.handle_event(EventType.BEFORE_TASK_RESULT_FILTER, ctx(**{FLContextKey.TASK_RESULT: result}))
    task = Shareable()
    heads.handle_event(EventType.AFTER_TASK_DATA_FILTER, ctx(**{FLContextKey.TASK_DATA: task}))

    end = heads.trail.end()
    assert task.get_header(SERVER_HEAD_HEADER) == {"seq": end.seq, "hash": end.hash}


def test_a_head_the_server_cannot_record_stops_the_job(heads, kit):
    (kit / "audit" / TRAIL_FILE).parent.mkdir(exist_ok=True)
    (kit / "audit" / TRAIL_FILE).write_text("not a trail line\n")
    fl_ctx = ctx(**{FLContextKey.TASK_RESULT: Shareable()})
    heads.handle_event(EventType.BEFORE_TASK_RESULT_FILTER, fl_ctx)
    assert EventType.FATAL_SYSTEM_ERROR in fl_ctx.get_engine().events


def test_the_component_becomes_a_handler_of_the_run_flare_starts(heads, kit):
    (kit / "local").mkdir()
    fake_server = SimpleNamespace(project_name="server", engine=None, client_manager=None,
                                  runner_config=SimpleNamespace(components={}, handlers=[]))
    run_manager = FederatedServer.create_run_manager(fake_server, Workspace(str(kit), "server"), "")
    assert heads in run_manager.handlers

    server_heads.uninstall_run_hook()  # FLARE's own: the job's components only, the component never sees a result
    fake_server.runner_config.handlers = []
    assert heads not in FederatedServer.create_run_manager(fake_server, Workspace(str(kit), "server"), "").handlers


def test_an_unpinned_flare_refuses_the_hook(kit, monkeypatch):
    monkeypatch.setitem(server_heads.PINNED_SOURCES, next(iter(server_heads.PINNED_SOURCES)), "0" * 64)
    with pytest.raises(PatchGuardError, match="job must not run"):
        ServerTrailHeads(workspace=str(kit))
    assert FederatedServer.create_run_manager is server_heads._ORIGINAL


def test_flare_loads_the_declaration_in_the_server_job_process_only(kit):
    (name, content), = DECLARATION.items()
    (kit / "startup" / name).write_text(json.dumps(content))
    (kit / "local").mkdir()
    (kit / "local" / "resources.json.default").write_text("{}")
    workspace = Workspace(str(kit), "server")

    assert str(kit / "startup" / name) in workspace.get_config_files_for_startup(is_server=True, for_job=True)
    assert str(kit / "startup" / name) not in workspace.get_config_files_for_startup(is_server=True, for_job=False)
    assert content == {"components": [HEADS_COMPONENT]}
