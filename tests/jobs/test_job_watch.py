"""Finding a site that stopped answering, and the logs of a failed job, from the POC's processes
and files (real processes, no FLARE)."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from consortium.jobs.watch import SiteWatch, first_errors, job_logs
from consortium.poc import lifecycle as poc
from consortium.poc.workspace import MARKER_FILE, keep_console_downloads

JOB = "0f0e0d0c-1111-2222-3333-444455556666"


def sleeper(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *args])


@pytest.fixture
def site_processes(tmp_path):
    """Two 'sites' (their FLARE clients) and hungary's job process, as real processes."""
    started = {"cleveland": sleeper(), "hungary": sleeper()}
    job = sleeper("-m", str(tmp_path / "kits" / "hungary"), "-n", JOB)
    procs = [poc.Proc(site, p.pid, psutil.Process(p.pid).create_time()) for site, p in started.items()]
    state = poc.PocState(str(tmp_path), str(tmp_path / "kits"), "p", 1, "a", ["cleveland", "hungary"], procs)
    try:
        yield state, started, job
    finally:
        for p in [*started.values(), job]:
            p.kill()
            p.wait()


def test_a_site_whose_job_process_exits_is_named(site_processes):
    state, _, job = site_processes
    watch = SiteWatch(state, JOB, interval=0, settle=0.3)
    assert watch.check() == []  # sees hungary's job process running

    job.kill()
    job.wait()
    assert watch.check() == []  # not at once: at a job's end every job process exits
    time.sleep(0.4)
    lost = watch.check()

    assert [str(x) for x in lost] == [f"site hungary stopped answering: its process for job {JOB} (pid {job.pid}) exited"]
    assert watch.remaining() == ["cleveland"]
    assert watch.check() == []  # reported once


def test_a_site_that_stopped_its_job_is_named_with_the_reason_its_log_gives(site_processes, tmp_path):
    state, _, job = site_processes
    log = tmp_path / "kits" / "hungary" / JOB / "log.txt"
    log.parent.mkdir(parents=True)
    log.write_text("2026-12-07 22:53:19,001 - ClientRunner - INFO - [identity=hungary, run=x]: started\n"
                   "2026-12-07 22:53:20,002 - SiteAuditTrail - ERROR - [identity=hungary, run=x, task_name=train]: "
                   "audit trail: task_received not recorded (disk full); stopping the job at this site\n"
                   "2026-12-07 22:53:20,003 - ClientRunner - ERROR - [identity=hungary]: later noise\n")
    watch = SiteWatch(state, JOB, interval=0, settle=0)
    watch.check()
    job.kill()
    job.wait()
    time.sleep(0.1)

    lost = watch.check()

    assert [str(x) for x in lost] == [f"site hungary stopped answering: its process for job {JOB} (pid {job.pid}) exited; "
                                      "its log says: audit trail: task_received not recorded (disk full); stopping the "
                                      "job at this site"]


def test_a_site_whose_flare_client_died_is_named(site_processes):
    state, started, _ = site_processes
    started["cleveland"].kill()
    started["cleveland"].wait()

    lost = SiteWatch(state, JOB, interval=0).check()

    assert [x.site for x in lost] == ["cleveland"] and "FLARE client" in lost[0].what


def test_status_names_a_stopped_server_and_lists_no_client_as_connected(site_processes, tmp_path):
    state, _, _ = site_processes
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    created = psutil.Process(finished.pid).create_time()
    finished.wait()
    state.procs.append(poc.Proc("server", finished.pid, created))
    state.save(tmp_path / poc.STATE_FILE)

    st = poc.status(tmp_path)

    assert st["state"] == "degraded"
    assert st["stopped"] == [f"site server stopped (process {finished.pid} is no longer running)"]
    assert "connected_clients" not in st and st["admin"] == "the server is not running"


def test_only_log_files_that_exist_are_named_with_their_first_errors(tmp_path):
    state = poc.PocState(str(tmp_path), str(tmp_path / "kits"), "p", 1, "a", ["cleveland", "hungary"], [])
    log = tmp_path / "kits" / "hungary" / JOB / "log.txt"
    log.parent.mkdir(parents=True)
    log.write_text("2026 - INFO - fine\n2026 - ERROR - task train failed: boom\nmore\n")

    logs = job_logs(state, JOB)

    assert logs == [log]
    assert first_errors(logs) == [f"{log}: 2026 - ERROR - task train failed: boom"]


def test_up_keeps_what_the_console_downloaded(tmp_path, project):
    ws = tmp_path / "ws"
    transfer = ws / "proj" / "prod_00" / "admin@x.org" / "transfer"
    (transfer / JOB).mkdir(parents=True)
    (transfer / JOB / "meta.json").write_text("{}")
    (ws / MARKER_FILE).write_text("")
    keep = tmp_path / "kept"

    keep_console_downloads(ws, keep, echo=lambda _: None)

    assert (keep / "admin@x.org" / JOB / "meta.json").is_file()
    assert not any(transfer.iterdir())


def test_watch_reads_the_process_table_at_most_once_per_interval(site_processes):
    state, _, job = site_processes
    watch = SiteWatch(state, JOB, interval=60)
    watch.check()
    job.kill()
    job.wait()
    time.sleep(0.1)
    assert watch.check() == []  # not looked again yet


def test_job_processes_ending_with_the_servers_are_not_losses(site_processes, tmp_path):
    state, _, job = site_processes
    server_job = sleeper("-m", str(tmp_path / "kits" / "server"), "-n", JOB)
    try:
        watch = SiteWatch(state, JOB, interval=0, settle=0.1)
        watch.check()
        for p in (job, server_job):  # the job ends: site and server job processes exit
            p.kill()
            p.wait()
        time.sleep(0.2)
        assert watch.check() == []
    finally:
        server_job.kill()
        server_job.wait()
