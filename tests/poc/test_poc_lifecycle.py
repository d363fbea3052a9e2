"""POC start-up refusals that need no running consortium: busy port, stale state."""

from __future__ import annotations

import socket
import subprocess
import sys

import psutil
import pytest

from consortium.poc import lifecycle as poc


def test_busy_port_is_reported_before_anything_starts(project, tmp_path):
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(poc.PocError, match=f"port {port} on this machine is in use"):
            poc.up(project, tmp_path / "ws", port=port)
    assert not (tmp_path / "ws").exists()


def test_state_whose_processes_are_gone_is_reported_stale(tmp_path):
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    created = psutil.Process(finished.pid).create_time()
    finished.wait()
    tmp_path.mkdir(exist_ok=True)
    state = poc.PocState(str(tmp_path), str(tmp_path), "p", 1, "a", ["c"], [poc.Proc("server", finished.pid, created)])
    state.save(tmp_path / poc.STATE_FILE)
    assert poc.status(tmp_path)["state"] == "stale"


def test_unreadable_state_names_the_file(tmp_path):
    (tmp_path / poc.STATE_FILE).write_text("{not json")
    with pytest.raises(poc.PocError, match=poc.STATE_FILE):
        poc.status(tmp_path)


def test_up_refuses_to_delete_a_folder_it_did_not_make(project, tmp_path):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("...")
    with pytest.raises(poc.PocError, match="refusing to delete it"):
        poc.up(project, precious, port=_free_port())
    assert (precious / "chapter1.tex").read_text() == "..."


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_partly_running_consortium_is_explained_not_reused(project, tmp_path):
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        procs = [poc.Proc("server", alive.pid, psutil.Process(alive.pid).create_time())]
        procs.append(poc.Proc("cleveland", finished.pid, psutil.Process(finished.pid).create_time()))
        finished.wait()
        poc.PocState(str(tmp_path), str(tmp_path), "p", 1, "a", ["cleveland"], procs).save(tmp_path / poc.STATE_FILE)
        with pytest.raises(poc.PocError, match=r"only partly running: \['server'\] running, \['cleveland'\] stopped"):
            poc.up(project, tmp_path, port=_free_port())
        assert poc.status(tmp_path)["state"] == "degraded"
    finally:
        alive.kill()
        alive.wait()
