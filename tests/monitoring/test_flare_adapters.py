"""The FLARE side of monitoring and incidents with real Shareables and contexts: the aggregator's
round controls (quarantine, timings), the incident gate between rounds, the metrics listener."""

from __future__ import annotations

import threading
import time
import urllib.request

import numpy as np
import pytest
from nvflare.apis.dxo import DXO, DataKind
from nvflare.apis.event_type import EventType
from nvflare.apis.fl_constant import ReservedKey
from nvflare.apis.fl_context import FLContext
from nvflare.apis.signal import Signal
from nvflare.apis.workspace import Workspace
from nvflare.app_common.abstract.model import make_model_learnable
from nvflare.app_common.app_constant import AppConstants

from consortium.flare import incident as incident_module
from consortium.flare.aggregators.round import ROUND_RECORD_EVENT, ROUND_RECORD_PROP, RoundAggregator, RoundControls
from consortium.flare.incident import INCIDENT_EVENT, IncidentGate
from consortium.flare.listeners.metrics_exporter import RoundMetricsListener
from consortium.operations.incidents import CONTROL_FILE, IncidentEvent, append_event


class _Client:
    def __init__(self, name):
        self.name = name


class _Engine:
    def __init__(self, root):
        (root / "startup").mkdir(exist_ok=True)
        (root / "local").mkdir(exist_ok=True)
        self.workspace = Workspace(str(root), "server")
        self.handlers = []

    def get_workspace(self):
        return self.workspace

    def get_clients(self):
        return [_Client(s) for s in ("a", "b", "c")]

    def fire_event(self, event_type, fl_ctx):
        for h in self.handlers:
            h.handle_event(event_type, fl_ctx)


@pytest.fixture
def engine(tmp_path):
    (tmp_path / "job1").mkdir()
    return _Engine(tmp_path)


@pytest.fixture
def fl_ctx(engine):
    ctx = FLContext()
    ctx.set_prop(ReservedKey.ENGINE, engine, private=True, sticky=False)
    ctx.set_prop(ReservedKey.RUN_NUM, "job1", private=True, sticky=False)
    ctx.set_prop(AppConstants.CURRENT_ROUND, 3, private=True, sticky=False)
    ctx.set_prop(AppConstants.GLOBAL_MODEL, make_model_learnable({"w": np.zeros(2, np.float32)}, {}), private=True, sticky=False)
    return ctx


def result(site, update):
    m = {"n_samples": 10, "train_loss": 0.5, "train_seconds": 0.01, "val_n": 4, "val_score_sum": 3.0, "val_metric": "accuracy"}
    s = DXO(data_kind=DataKind.WEIGHT_DIFF, data={"w": np.asarray(update, dtype=np.float32)}, meta=m).to_shareable()
    s.set_peer_props({ReservedKey.IDENTITY_NAME: site})
    s.add_cookie(AppConstants.CONTRIBUTION_ROUND, 3)
    return s


class _Catch:
    def __init__(self):
        self.records = []

    def handle_event(self, event_type, fl_ctx):
        if event_type == ROUND_RECORD_EVENT:
            self.records.append(fl_ctx.get_prop(ROUND_RECORD_PROP))


def test_a_quarantined_site_is_refused_with_the_reason_in_the_round_record(engine, fl_ctx):
    catch = _Catch()
    engine.handlers.append(catch)
    agg = RoundAggregator()
    agg.set_round_controls(RoundControls(time.time() - 1.0, {"c": "quarantine c by admin: x50"}, ("freeze by admin",)))

    assert agg.accept(result("a", [1.0, 0.0]), fl_ctx) and agg.accept(result("b", [0.0, 1.0]), fl_ctx)
    assert not agg.accept(result("c", [50.0, 50.0]), fl_ctx)
    agg.aggregate(fl_ctx)

    record = catch.records[-1]
    assert record["contributors"] == ["a", "b"] and "quarantine c by admin: x50" in record["rejected"]["c"]
    assert record["quarantined"] == {"c": "quarantine c by admin: x50"} and record["incidents"] == ["freeze by admin"]
    assert set(record["site_seconds"]) == {"a", "b", "c"} and all(v >= 0.9 for v in record["site_seconds"].values())
    assert record["site_update_bytes"] == {"a": 8, "b": 8} and record["site_train_loss"] == {"a": 0.5, "b": 0.5}
    assert record["started_at"] < record["finished_at"]


class _Workflow:
    """What the gate uses of the workflow: logging and events."""

    def __init__(self, engine):
        self.engine, self.warnings, self._current_round = engine, [], 3

    def log_warning(self, fl_ctx, msg):
        self.warnings.append(msg)

    log_error = log_warning

    def fire_event(self, event_type, fl_ctx):
        self.engine.fire_event(event_type, fl_ctx)


def test_the_gate_holds_while_frozen_and_tells_each_control_once(engine, fl_ctx, tmp_path, monkeypatch):
    monkeypatch.setattr(incident_module, "POLL_S", 0.05)
    audited = []
    monkeypatch.setattr(incident_module, "add_job_audit_event", lambda ctx, msg: audited.append(msg))
    told = []
    engine.handlers.append(type("L", (), {"handle_event": lambda self, e, ctx: told.append(e)})())
    path = tmp_path / "job1" / CONTROL_FILE
    append_event(path, IncidentEvent("freeze", "admin@x", time.time(), "alert on b"))
    gate = IncidentGate(_Workflow(engine))
    thaw = threading.Timer(0.3, lambda: append_event(path, IncidentEvent("thaw", "admin@x", time.time())))
    thaw.start()

    started = time.monotonic()
    state = gate.hold_while_frozen(fl_ctx, Signal())

    assert time.monotonic() - started >= 0.25 and not state.frozen
    assert [a.split(" by ")[0] for a in audited] == ["consortium incident: freeze", "consortium incident: thaw"]
    assert told.count(INCIDENT_EVENT) == 2
    assert len(gate.take_applied()) == 2 and gate.take_applied() == []
    assert gate.hold_while_frozen(fl_ctx, Signal()).frozen is False and len(audited) == 2  # nothing new, nothing told


def test_the_listener_serves_the_round_record_and_stops_at_the_end_of_the_run(engine, fl_ctx):
    listener = RoundMetricsListener(port=0, final_scrape_wait=0)
    listener.handle_event(EventType.START_RUN, fl_ctx)
    port = listener.exporter.port
    fl_ctx.set_prop(ROUND_RECORD_PROP, {"round": 0, "contributors": ["a", "b"], "rejected": {}, "mean_train_loss": 0.5,
                                        "site_norms": {"a": 1.0, "b": 2.0}, "finished_at": 2.0, "started_at": 1.0},
                    private=True, sticky=False)
    listener.handle_event(ROUND_RECORD_EVENT, fl_ctx)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    listener.handle_event(EventType.END_RUN, fl_ctx)

    assert 'consortium_participation_ratio{fl_job="job1"} 0.6666' in text
    assert 'consortium_site_contributed{fl_job="job1",site="c"} 0.0' in text
    assert 'consortium_site_update_norm{fl_job="job1",site="b"} 2.0' in text
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


@pytest.mark.parametrize("wait", [-1, 301, "10", True])
def test_the_listener_refuses_a_bad_final_scrape_wait(wait):
    with pytest.raises(ValueError, match="final_scrape_wait"):
        RoundMetricsListener(port=0, final_scrape_wait=wait)
