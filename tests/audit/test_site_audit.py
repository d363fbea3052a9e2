"""The site audit component with FLARE's own objects, built by hand as FLARE's client runner
builds them: what a task brings and what leaves after every filter is recorded (digests and
metadata, never values); a result that cannot be recorded does not leave."""

from __future__ import annotations

import json

import numpy as np
import pytest
from nvflare.apis.dxo import DXO, DataKind, from_shareable
from nvflare.apis.event_type import EventType
from nvflare.apis.filter import Filter, FilterContextKey, FilterSource
from nvflare.apis.fl_constant import FilterKey, FLContextKey, ProcessType, ReservedKey, ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable, make_reply
from nvflare.apis.utils.task_utils import apply_filters
from nvflare.apis.workspace import Workspace
from nvflare.app_common.app_constant import AppConstants
from nvflare.private.privacy_manager import Scope

from consortium.audit.chain import TRAIL_FILE
from consortium.audit.digest import content_sha256
from consortium.audit.verify import verify_trail
from consortium.flare.audit.site import AUDIT_FAILED, HE_META_KEY, SITE_AUDIT_ID, SiteAuditTrail, payload
from consortium.flare.filters.dp import PRIVACY_REFUSED, GaussianUpdatePrivacy
from consortium.protocol.site_result import REFUSAL_HEADER

WEIGHTS = np.array([0.123456, -0.654321], dtype=np.float32)


class _Engine:
    def __init__(self, root):
        for d in ("startup", "local"):
            (root / d).mkdir(exist_ok=True)
        self.workspace = Workspace(str(root), "cleveland")
        self.events = []
        self.components = {}

    def get_component(self, component_id):
        return self.components.get(component_id)

    def get_workspace(self):
        return self.workspace

    def fire_event(self, event_type, fl_ctx):
        self.events.append(event_type)


class _JobFilter(Filter):
    """Stands for a job's own result filter (e.g. HE encryption): marks the result."""

    def process(self, shareable, fl_ctx):
        return shareable


class _Runner:
    def __init__(self, job_filters):
        self.task_result_filters = {"train" + FilterKey.DELIMITER + FilterKey.OUT: job_filters}


@pytest.fixture
def engine(tmp_path):
    return _Engine(tmp_path)


@pytest.fixture
def fl_ctx(engine):
    dp = GaussianUpdatePrivacy(clip_norm=1.0, noise_multiplier=2.0, site_epsilon_budget=50.0, noise_seed=0)
    scope = Scope()
    scope.set_name("dp")
    scope.add_task_result_filter(dp, FilterKey.OUT)  # sets source = site
    job_filter = _JobFilter()
    job_filter.set_prop(FilterContextKey.SOURCE, FilterSource.JOB)
    ctx = FLContext()
    for key, value in {ReservedKey.ENGINE: engine, ReservedKey.RUN_NUM: "job1", ReservedKey.IDENTITY_NAME: "cleveland",
                       FLContextKey.PROCESS_TYPE: ProcessType.CLIENT_JOB, FLContextKey.SCOPE_OBJECT: scope,
                       FLContextKey.EFFECTIVE_JOB_SCOPE_NAME: "dp", FLContextKey.RUNNER: _Runner([job_filter])}.items():
        ctx.set_prop(key, value, private=True, sticky=False)
    return ctx


def site_audit(fl_ctx) -> SiteAuditTrail:
    """The component as FLARE registers it from the site's privacy.json."""
    audit = SiteAuditTrail()
    fl_ctx.get_engine().components[SITE_AUDIT_ID] = audit
    return audit


def records(tmp_path) -> list[dict]:
    return [json.loads(line)["record"] for line in (tmp_path / "audit" / TRAIL_FILE).read_text().splitlines()]


def receive(audit, fl_ctx, task="train", task_id="t1", round_=3) -> Shareable:
    data = DXO(DataKind.WEIGHTS, {"w": WEIGHTS}).to_shareable()
    data.set_header(AppConstants.CURRENT_ROUND, round_)
    for key, value in ((FLContextKey.TASK_DATA, data), (FLContextKey.TASK_NAME, task), (FLContextKey.TASK_ID, task_id)):
        fl_ctx.set_prop(key, value, private=True, sticky=False)
    audit.handle_event(EventType.BEFORE_TASK_DATA_FILTER, fl_ctx)
    return data


def leave(audit, fl_ctx, result: Shareable) -> Shareable:
    """FLARE's order: site scope filters, then the job's, then AFTER_TASK_RESULT_FILTER with the result."""
    out = apply_filters("task_result_filters", result, fl_ctx, fl_ctx.get_prop(FLContextKey.RUNNER).task_result_filters,
                        "train", FilterKey.OUT)
    fl_ctx.set_prop(FLContextKey.TASK_RESULT, out, private=True, sticky=False)
    audit.handle_event(EventType.AFTER_TASK_RESULT_FILTER, fl_ctx)
    return out


def update(**meta) -> Shareable:
    return DXO(DataKind.WEIGHT_DIFF, {"w": WEIGHTS}, {"n_samples": 100, "local_steps": 5, **meta}).to_shareable()


def test_a_round_is_recorded_from_the_task_received_to_the_update_that_left_after_all_filters(fl_ctx, tmp_path):
    audit = site_audit(fl_ctx)
    audit.handle_event(EventType.START_RUN, fl_ctx)
    data = receive(audit, fl_ctx)
    sent = leave(audit, fl_ctx, update())
    audit.handle_event(EventType.BEFORE_SEND_TASK_RESULT, fl_ctx)
    audit.handle_event(EventType.END_RUN, fl_ctx)

    started, received, released, ended = records(tmp_path)
    assert started == {"event": "job_started", "site": "cleveland", "job": "job1", "scope": "dp"}
    assert received == {"event": "task_received", "site": "cleveland", "job": "job1", "task": "train", "task_id": "t1",
                        "round": 3, "data_sha256": content_sha256(payload(data)), "server_head": None}
    assert released["event"] == "result_sent" and released["round"] == 3 and released["return_code"] == ReturnCode.OK
    assert released["filters"] == [
        {"filter": "consortium.flare.filters.dp.GaussianUpdatePrivacy", "source": "site"},
        {"filter": f"{__name__}._JobFilter", "source": "job"}]
    assert released["dp_epsilon"] > 0 and released["he"] is False
    assert released["result_sha256"] == content_sha256(payload(sent))  # the noised update, as sent
    assert ended["event"] == "job_ended"
    assert verify_trail(tmp_path / "audit").ok


def test_no_value_of_the_data_is_written(fl_ctx, tmp_path):
    audit = site_audit(fl_ctx)
    receive(audit, fl_ctx)
    sent = leave(audit, fl_ctx, update())

    text = json.dumps([{k: v for k, v in r.items() if k != "dp_epsilon"} for r in records(tmp_path)])
    values = [*WEIGHTS, *from_shareable(sent).data["w"]]  # received and released (noised) weights
    assert all(f"{float(v):.4f}"[:-1] not in text for v in values)  # e.g. "0.123" (hashes have no ".")
    assert "n_samples" not in text and '"w"' not in text


def test_an_he_result_is_marked_as_ciphertext(fl_ctx, tmp_path):
    fl_ctx.set_prop(FLContextKey.SCOPE_OBJECT, None, private=True, sticky=False)  # no DP at this site
    audit = site_audit(fl_ctx)
    receive(audit, fl_ctx)
    he = DXO(DataKind.APP_DEFINED, {"ciphertexts": [b"\x01\x02"]}, {HE_META_KEY: "site_update", "n_samples": 100})
    leave(audit, fl_ctx, he.to_shareable())

    released = records(tmp_path)[-1]
    assert released["he"] is True and released["dp_epsilon"] is None
    assert [f["source"] for f in released["filters"]] == ["job"]


def test_the_he_marker_is_the_one_the_he_filter_writes():
    he_site = pytest.importorskip("consortium.flare.he.site")
    assert he_site.HE_META == HE_META_KEY


def test_a_refusal_is_recorded_with_its_reason(fl_ctx, tmp_path):
    audit = site_audit(fl_ctx)
    receive(audit, fl_ctx, task="feature_stats")
    refusal = make_reply(PRIVACY_REFUSED)
    refusal.set_header(REFUSAL_HEADER, "site budget exhausted")
    fl_ctx.set_prop(FLContextKey.TASK_RESULT, refusal, private=True, sticky=False)
    audit.handle_event(EventType.AFTER_TASK_RESULT_FILTER, fl_ctx)

    released = records(tmp_path)[-1]
    assert released["event"] == "result_refused" and released["return_code"] == PRIVACY_REFUSED
    assert released["refusal"] == "site budget exhausted" and released["task"] == "feature_stats"


def test_a_task_whose_result_never_passed_the_filters_is_recorded_as_failed(fl_ctx, tmp_path):
    audit = site_audit(fl_ctx)
    receive(audit, fl_ctx)
    audit.handle_event(EventType.BEFORE_SEND_TASK_RESULT, fl_ctx)  # a filter raised: no AFTER_TASK_RESULT_FILTER

    assert [r["event"] for r in records(tmp_path)] == ["task_received", "task_failed"]


def test_a_result_that_cannot_be_recorded_does_not_leave(fl_ctx, tmp_path, engine):
    audit = site_audit(fl_ctx)
    receive(audit, fl_ctx)
    (tmp_path / "audit" / TRAIL_FILE).unlink()
    (tmp_path / "audit" / TRAIL_FILE).mkdir()  # from here on the trail cannot be written
    sent = leave(audit, fl_ctx, update())

    assert sent.get_return_code() == AUDIT_FAILED and payload(sent) == {}
    assert sent.get_header(REFUSAL_HEADER) == "audit trail not writable at cleveland"
    assert EventType.FATAL_SYSTEM_ERROR not in engine.events  # not yet: FLARE would drop the reply, reason and all
    audit.handle_event(EventType.AFTER_SEND_TASK_RESULT, fl_ctx)
    assert EventType.FATAL_SYSTEM_ERROR in engine.events  # the job stops at this site once the reason was sent


def test_a_damaged_trail_stops_the_release(fl_ctx, tmp_path, engine):
    audit = site_audit(fl_ctx)
    receive(audit, fl_ctx)
    trail = tmp_path / "audit" / TRAIL_FILE
    trail.write_text("")  # its lines deleted; the head still names them

    sent = leave(audit, fl_ctx, update())
    audit.handle_event(EventType.AFTER_SEND_TASK_RESULT, fl_ctx)

    assert sent.get_return_code() == AUDIT_FAILED and payload(sent) == {}
    assert EventType.FATAL_SYSTEM_ERROR in engine.events


def test_a_result_that_cannot_be_digested_is_withheld(fl_ctx, tmp_path, engine):
    fl_ctx.set_prop(FLContextKey.SCOPE_OBJECT, None, private=True, sticky=False)
    audit = site_audit(fl_ctx)
    receive(audit, fl_ctx)
    odd = Shareable()
    odd["thing"] = object()

    sent = leave(audit, fl_ctx, odd)
    audit.handle_event(EventType.AFTER_SEND_TASK_RESULT, fl_ctx)

    assert sent.get_return_code() == AUDIT_FAILED and payload(sent) == {}
    assert EventType.FATAL_SYSTEM_ERROR in engine.events
    assert [r["event"] for r in records(tmp_path)] == ["task_received"]


def test_nothing_is_recorded_at_the_server(fl_ctx, tmp_path):
    fl_ctx.set_prop(FLContextKey.PROCESS_TYPE, ProcessType.SERVER_JOB, private=True, sticky=False)
    audit = site_audit(fl_ctx)
    audit.handle_event(EventType.START_RUN, fl_ctx)
    receive(audit, fl_ctx)

    assert not (tmp_path / "audit").exists()


def test_a_bad_folder_argument_is_refused():
    with pytest.raises(ValueError, match="folder"):
        SiteAuditTrail(folder="")


def test_an_instance_a_job_declares_writes_nothing(fl_ctx, tmp_path):
    site_audit(fl_ctx)
    from_job = SiteAuditTrail()
    from_job.handle_event(EventType.START_RUN, fl_ctx)
    receive(from_job, fl_ctx)

    assert not (tmp_path / "audit").exists()


def test_a_result_carries_the_head_of_its_own_line_and_a_task_the_servers_head(fl_ctx, tmp_path):
    from consortium.audit.anchors import SERVER_HEAD_HEADER, SITE_HEAD_HEADER

    audit = site_audit(fl_ctx)
    server_head = {"seq": 41, "hash": "ab" * 32}
    data = DXO(DataKind.WEIGHTS, {"w": WEIGHTS}).to_shareable()
    data.set_header(SERVER_HEAD_HEADER, server_head)
    for key, value in ((FLContextKey.TASK_DATA, data), (FLContextKey.TASK_NAME, "train"), (FLContextKey.TASK_ID, "t1")):
        fl_ctx.set_prop(key, value, private=True, sticky=False)
    audit.handle_event(EventType.BEFORE_TASK_DATA_FILTER, fl_ctx)
    sent = leave(audit, fl_ctx, update())

    lines = [json.loads(x) for x in (tmp_path / "audit" / TRAIL_FILE).read_text().splitlines()]
    assert lines[0]["record"]["server_head"] == server_head
    assert sent.get_header(SITE_HEAD_HEADER) == {"seq": 2, "hash": lines[1]["hash"]}  # the result_sent line itself
    assert lines[1]["record"]["result_sha256"] == content_sha256(payload(sent))  # the header is not in the digest


def test_a_line_whose_head_failed_is_logged_as_recorded_and_the_next_release_is_withheld(fl_ctx, tmp_path, caplog, monkeypatch):
    from consortium.audit import chain

    audit = site_audit(fl_ctx)
    monkeypatch.setattr(chain, "atomic_write", lambda path, data: (_ for _ in ()).throw(OSError("read-only file system")))
    receive(audit, fl_ctx)
    assert "task_received recorded as record 1, but its head file could not be written" in caplog.text
    assert "not recorded" not in caplog.text

    sent = leave(audit, fl_ctx, update())  # record 1's head cannot be written first: nothing appended
    assert sent.get_return_code() == AUDIT_FAILED and payload(sent) == {}
    assert sent.get_header(REFUSAL_HEADER) == "audit trail not writable at cleveland"
    result = verify_trail(tmp_path / "audit")
    assert result.ok and result.unheaded and result.lines == 1


def test_a_provisioned_site_signs_every_line_and_one_without_its_key_writes_nothing(fl_ctx, tmp_path, engine):
    from audit_kits import RootCA

    from consortium.audit.signing import kit_certificate

    RootCA().kit(tmp_path, "cleveland")
    audit = site_audit(fl_ctx)
    receive(audit, fl_ctx)
    leave(audit, fl_ctx, update())
    assert verify_trail(tmp_path / "audit", kit_certificate(tmp_path).public_key()).ok

    (tmp_path / "startup" / "client.key").unlink()
    later = site_audit(fl_ctx)  # the next job's process
    receive(later, fl_ctx, task_id="t2")
    sent = leave(later, fl_ctx, update())
    later.handle_event(EventType.AFTER_SEND_TASK_RESULT, fl_ctx)
    assert sent.get_header(REFUSAL_HEADER) == "audit trail not writable at cleveland"
    assert EventType.FATAL_SYSTEM_ERROR in engine.events
    assert len(records(tmp_path)) == 2  # nothing unsigned was written


def test_a_task_that_cannot_be_recorded_is_answered_with_the_reason_and_then_the_job_stops(fl_ctx, tmp_path, engine, caplog):
    (tmp_path / "audit").write_text("not a folder")  # the trail cannot be written from the start
    audit = site_audit(fl_ctx)
    audit.handle_event(EventType.START_RUN, fl_ctx)
    receive(audit, fl_ctx)
    assert "audit trail: job_started not recorded" in caplog.text
    assert EventType.FATAL_SYSTEM_ERROR not in engine.events  # a panic now would send the server nothing at all

    sent = leave(audit, fl_ctx, update())
    assert sent.get_return_code() == AUDIT_FAILED and payload(sent) == {}
    assert sent.get_header(REFUSAL_HEADER) == "audit trail not writable at cleveland"
    audit.handle_event(EventType.AFTER_SEND_TASK_RESULT, fl_ctx)
    assert EventType.FATAL_SYSTEM_ERROR in engine.events
