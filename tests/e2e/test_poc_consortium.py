"""The real thing: a POC consortium of four hospitals, jobs submitted through the admin API and
through the admin console."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import pexpect
import psutil
import pytest

from conftest import JOBS
from consortium.cli import poc
from consortium.cli.main import report
from consortium.cli.poc_processes import process_tree
from consortium.cli.submit import submit_and_follow
from consortium.reporting import load_results, write_report

pytestmark = pytest.mark.poc
SITES = {"cleveland", "hungary", "switzerland", "va-long-beach"}


def _tree_status() -> str:
    import subprocess

    return subprocess.run(["git", "status", "--porcelain"], cwd=JOBS.parent, capture_output=True, text=True).stdout


TREE_BEFORE = _tree_status()  # at collection, before any test of this module runs


def job_with_rounds(name: str, tmp_path: Path, rounds: int) -> Path:
    """A copy of ``jobs/name`` (FLARE signs what it submits) running ``rounds`` rounds."""
    job = Path(shutil.copytree(JOBS / name, tmp_path / name))
    server = job / "app" / "config" / "config_fed_server.json"
    config = json.loads(server.read_text())
    next(w for w in config["workflows"] if w["id"] == "scatter_and_gather")["args"]["num_rounds"] = rounds
    server.write_text(json.dumps(config))
    return job


def test_all_four_hospitals_connect(poc_consortium):
    sess = poc.admin_session(poc_consortium)
    try:
        assert poc.connected_clients(sess) == sorted(["cleveland", "hungary", "switzerland", "va-long-beach"])
    finally:
        sess.close()


def test_status_reports_a_running_consortium(poc_consortium):
    st = poc.status(poc.Path(poc_consortium.workspace))
    assert st["state"] == "running"
    assert set(st["processes"]) == {"server", "cleveland", "hungary", "switzerland", "va-long-beach"}


def test_up_refuses_to_reuse_a_running_consortium(poc_consortium, project):
    with pytest.raises(poc.PocError, match="already running"):
        poc.up(project, poc.Path(poc_consortium.workspace))


def test_fedprox_job_through_admin_api_completes_all_rounds(poc_consortium, tmp_path):
    lines: list[str] = []
    folder = submit_and_follow(poc_consortium, JOBS / "heart_fedprox", tmp_path / "results", echo=lines.append)
    assert not list((JOBS / "heart_fedprox").rglob(".__nvfl_*")), "submission signed the job folder in place"
    results = load_results(folder)
    assert list(results.rounds["round"]) == list(range(30))
    assert (results.rounds["sites"] == 4).all()
    assert results.rounds["contributors"].iloc[-1] == sorted(SITES) and results.rounds["rejected"].iloc[-1] == {}
    assert sum(line.startswith("round") for line in lines) == 30
    assert set(results.scores.index) == {"cleveland", "hungary", "switzerland", "va-long-beach"}
    assert results.final_pooled_score >= 0.78
    report = write_report(results)
    assert report.is_file() and (folder / "learning_curve.png").stat().st_size > 0


def test_fednova_job_with_heterogeneous_local_work_completes(poc_consortium, tmp_path):
    folder = submit_and_follow(poc_consortium, JOBS / "heart_fednova", tmp_path / "results", echo=lambda _: None)
    results = load_results(folder)
    assert len(results.rounds) == 50
    # epochs x ceil(n_train / 8): cleveland 5 x 25, hungary 3 x 22, switzerland 1 x 4, va-long-beach 2 x 11
    assert results.rounds["local_steps"].iloc[-1] == {"cleveland": 125, "hungary": 66, "switzerland": 4, "va-long-beach": 22}
    assert results.final_pooled_score >= 0.78


def test_segmentation_job_with_site_generated_data_completes(poc_consortium, tmp_path):
    job = job_with_rounds("seg_fedavg", tmp_path, 10)

    folder = submit_and_follow(poc_consortium, job, tmp_path / "results", echo=lambda _: None)
    report(folder, {c: Path(poc_consortium.kits) / c for c in poc_consortium.clients})

    results = load_results(folder)
    assert len(results.rounds) == 10 and results.metric == "dice"
    assert results.final_pooled_score >= 0.7
    assert sorted(p.name for p in (folder / "pictures").iterdir()) == [f"site_{s}.png" for s in sorted(SITES)]
    assert "site_va-long-beach.png" in (folder / "report.md").read_text()


def test_admin_console_submits_and_lists_a_job(poc_consortium, tmp_path):
    job = Path(shutil.copytree(JOBS / "heart_fedavg", tmp_path / "heart_fedavg"))  # FLARE signs it in place
    kit = poc_consortium.admin_kit
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    console = pexpect.spawn("bash", [str(kit / "startup" / "fl_admin.sh")], env=env, encoding="utf-8", timeout=60)
    try:
        console.expect(">")
        console.sendline(f"submit_job {job}")
        console.expect(r"Submitted job: ([0-9a-f-]{36})")
        job_id = console.match.group(1)
        console.expect(">")
        console.sendline("list_jobs")
        console.expect(job_id)
        console.expect(">")
        console.sendline(f"abort_job {job_id}")
        console.expect(r"Are you sure \(y/N\)")
        console.sendline("y")
        console.expect(">")
        console.sendline("bye")
        console.expect(pexpect.EOF)
    finally:
        console.close(force=True)
    assert not list(JOBS.rglob(".__nvfl_*")), "a submission signed jobs/ in place"
    sess = poc.admin_session(poc_consortium)
    try:
        deadline = time.monotonic() + 60
        while not sess.get_job_meta(job_id)["status"].startswith("FINISHED") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert sess.get_job_meta(job_id)["status"].startswith("FINISHED")
    finally:
        sess.close()


def test_poc_listens_on_loopback_only(poc_consortium):
    tree = process_tree(poc_consortium.procs)
    listening = [c.laddr for p in tree for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]

    assert listening, "the POC server listens nowhere?"
    assert all(ipaddress.ip_address(a.ip).is_loopback for a in listening), listening


def test_he_job_through_admin_api_keeps_only_ciphertexts_at_the_server(poc_consortium, tmp_path):
    job = job_with_rounds("heart_fedprox_he", tmp_path, 5)

    folder = submit_and_follow(poc_consortium, job, tmp_path / "results", echo=lambda _: None)

    results = load_results(folder)
    assert list(results.rounds["sites"]) == [4] * 5 and results.rounds["rejected"].iloc[-1] == {}
    assert set(results.scores.index) == SITES and results.final_pooled_score >= 0.7
    assert len(list((results.workspace / "encrypted_rounds").glob("round_*.ckks"))) == 5
    assert not list(folder.rglob("*.pt"))  # the server never held a plaintext model


def test_a_failed_job_names_only_log_files_that_exist(poc_consortium, tmp_path):
    job = tmp_path / "heart_fedavg"
    shutil.copytree(JOBS / "heart_fedavg", job)
    client = job / "app" / "config" / "config_fed_client.json"
    config = json.loads(client.read_text())
    config["executors"][0]["executor"]["args"]["data_path"] = str(tmp_path / "no-such-file.data")
    client.write_text(json.dumps(config))

    with pytest.raises(poc.PocError) as err:
        submit_and_follow(poc_consortium, job, tmp_path / "results", timeout=180, echo=lambda _: None)

    text = str(err.value)
    assert "ended with status FINISHED:" in text and "logs: " in text
    logs = text.split("logs: ", 1)[1].splitlines()[0].split(", ")
    assert logs and all(Path(p).is_file() for p in logs), logs
    assert "no-such-file.data" in text  # the first error lines say what went wrong


# Keep last: it kills a site of the shared consortium.
def test_a_site_that_dies_mid_job_is_named_within_30_s(poc_consortium, tmp_path):
    job = job_with_rounds("heart_fedavg", tmp_path, 2000)
    hungary = next(p for p in poc_consortium.procs if p.site == "hungary")
    hungary_dir = str(Path(poc_consortium.kits) / "hungary")
    killed: dict[str, float] = {}

    def kill_hungary_once_its_job_runs():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if any(hungary_dir in (p.info["cmdline"] or []) and p.pid != hungary.pid
                   for p in psutil.process_iter(["pid", "cmdline"])):
                time.sleep(3)  # a few rounds
                psutil.Process(hungary.pid).kill()
                killed["at"] = time.monotonic()
                return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_hungary_once_its_job_runs, daemon=True)
    killer.start()
    lines: list[str] = []
    with pytest.raises(poc.PocError) as err:
        submit_and_follow(poc_consortium, job, tmp_path / "results", timeout=300, echo=lines.append)
    killer.join(5)

    assert "at" in killed, "hungary's job process never appeared"
    assert time.monotonic() - killed["at"] < 30
    assert "site hungary stopped answering" in str(err.value)
    assert any(line.startswith("site hungary stopped answering") for line in lines)
    st = poc.status(Path(poc_consortium.workspace))
    assert "hungary" not in st.get("connected_clients", [])
    assert any(s.startswith("site hungary stopped") for s in st["stopped"])


def test_the_tests_left_the_working_tree_as_they_found_it():
    assert _tree_status() == TREE_BEFORE  # e.g. no FLARE signature written into jobs/
