"""The incident control file: an append-only list of events whose sum is the job's state."""

from __future__ import annotations

import pytest

from consortium.operations.incidents import Action, IncidentEvent, append_event, read_events, state_of


def event(action, site=None, reason="", at=0.0):
    return IncidentEvent(action, by="admin@x", at=at, reason=reason, site=site)


def test_freeze_then_thaw_leaves_a_quarantine_in_force(tmp_path):
    path = tmp_path / "incident_control.json"
    for e in (event("freeze"), event("quarantine", "hungary", "x50 updates"), event("thaw")):
        append_event(path, e)

    state = state_of(read_events(path))

    assert not state.frozen
    assert list(state.quarantined) == ["hungary"] and "x50 updates" in state.quarantined["hungary"]
    assert [e.action for e in read_events(path)] == [Action.FREEZE, Action.QUARANTINE, Action.THAW]


def test_no_file_means_no_control(tmp_path):
    assert state_of(read_events(tmp_path / "none.json")).frozen is False


def test_a_damaged_file_is_an_error_not_an_empty_control(tmp_path):
    path = tmp_path / "incident_control.json"
    path.write_text('{"events": [{"action": "melt"')
    with pytest.raises(ValueError, match="unreadable incident controls"):
        read_events(path)


@pytest.mark.parametrize("action, site", [("quarantine", None), ("freeze", "hungary")])
def test_only_a_quarantine_names_a_site(action, site):
    with pytest.raises(ValueError, match="site"):
        event(action, site)


def test_an_event_line_says_what_who_when_and_why():
    line = event("quarantine", "hungary", "x50", at=0.0).line()
    assert line == "quarantine hungary by admin@x at 1970-01-01 00:00:00 UTC: x50"


def _poc_state(tmp_path):
    from consortium.poc.state import PocState

    (tmp_path / "server" / "job-1").mkdir(parents=True)
    return PocState(str(tmp_path), str(tmp_path), "p", 1, "admin@x", ["hungary", "cleveland"], [])


def test_the_command_appends_to_the_job_s_control_file(tmp_path):
    from consortium.admin.incidents import request

    state = _poc_state(tmp_path)
    request(state, "job-1", Action.QUARANTINE, "hungary", reason="x50", echo=lambda _: None)

    events = read_events(tmp_path / "server" / "job-1" / "incident_control.json")
    assert [(e.action, e.site, e.by, e.reason) for e in events] == [(Action.QUARANTINE, "hungary", "admin@x", "x50")]


@pytest.mark.parametrize("job, site, match", [("job-2", None, "no run folder"), ("job-1", "nowhere", "no site 'nowhere'")])
def test_the_command_refuses_an_unknown_job_or_site(tmp_path, job, site, match):
    from consortium.admin.incidents import request
    from consortium.poc.state import PocError

    with pytest.raises(PocError, match=match):
        request(_poc_state(tmp_path), job, Action.QUARANTINE if site else Action.FREEZE, site, echo=lambda _: None)


def test_the_command_refuses_a_job_that_finished_training(tmp_path):
    from consortium.admin.incidents import request
    from consortium.poc.state import PocError

    state = _poc_state(tmp_path)
    (tmp_path / "server" / "job-1" / "training_status.json").write_text("{}")
    with pytest.raises(PocError, match="finished training"):
        request(state, "job-1", Action.FREEZE, echo=lambda _: None)
