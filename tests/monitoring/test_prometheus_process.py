"""The POC's Prometheus process: started on loopback with the generated config and rules, recorded
in the POC state, stopped by PID (by `poc down` and by the clean-up of a failed start)."""

from __future__ import annotations

import json
import shutil
import socket
import urllib.request
from dataclasses import asdict

import pytest

from consortium.poc import lifecycle as poc
from consortium.poc.prometheus import start_prometheus
from consortium.poc.state import PocState, alive, stop_processes


@pytest.fixture(autouse=True)
def _prometheus_installed():
    if shutil.which("prometheus") is None:  # a missing tool fails the test: `make test` installs it first
        pytest.fail("prometheus not installed: run `make monitoring` (apt-get install prometheus)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def state_with(entry, tmp_path, port) -> PocState:
    state = PocState(str(tmp_path), str(tmp_path / "kits"), "p", 1, "admin@x", ["a"], [],
                     {"prometheus": asdict(entry), "port": port, "targets": ["127.0.0.1:1"], "folder": str(tmp_path)})
    state.save(tmp_path / poc.STATE_FILE)
    return state


def test_prometheus_loads_the_rules_and_poc_down_stops_it_by_pid(tmp_path):
    port = free_port()
    entry = start_prometheus(tmp_path / "prometheus", ["127.0.0.1:1"], port, scrape_interval="1s")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/rules", timeout=10) as r:
            rules = json.loads(r.read())["data"]["groups"][0]["rules"]
        assert {r["name"] for r in rules} >= {"ConsortiumUpdateNormAlert", "ConsortiumLowParticipation",
                                             "ConsortiumLossPlateau", "ConsortiumRoundLatencyP95"}
        state_with(entry, tmp_path, port)
        lines = []
        poc.down(tmp_path, echo=lines.append)
        assert alive(entry) is None and f"stopped Prometheus (pid {entry.pid})" in lines
        assert not (tmp_path / poc.STATE_FILE).exists()
    finally:
        stop_processes(PocState(str(tmp_path), "", "p", 1, "a", [], [], {"prometheus": asdict(entry)}), grace=2)


def test_the_clean_up_of_a_failed_start_stops_prometheus_too(tmp_path):
    port = free_port()
    entry = start_prometheus(tmp_path / "prometheus", ["127.0.0.1:1"], port, scrape_interval="1s")
    stopped = stop_processes(state_with(entry, tmp_path, port), grace=5)
    assert entry.pid in stopped and alive(entry) is None


def test_poc_up_with_monitoring_explains_a_missing_prometheus(tmp_path, monkeypatch, project):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(poc.PocError, match="make monitoring"):
        poc.up(project, tmp_path / "ws", monitoring=True)
