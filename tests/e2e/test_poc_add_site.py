"""A hospital joins the running POC consortium: `consortium site add` (kit under the same root CA,
existing kits untouched) and the request flow (`site request` / `approve` / `package`). Each test
leaves the shared consortium as it found it: the new site's processes stopped by PID, the site
removed from the server, the workspace's state files restored, even when the test fails."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import psutil
import pytest

from conftest import JOBS
from consortium.jobs.submit import submit_and_follow
from consortium.poc import lifecycle as poc
from consortium.poc.join import start_in_poc
from consortium.poc.state import STATE_FILE, PocState, alive, terminate
from consortium.provisioning.add_site import add_site
from consortium.reports.job_report import load_results

pytestmark = pytest.mark.poc
SITES = ["cleveland", "hungary", "switzerland", "va-long-beach"]
ORG = "university_hospital_basel"


def _provisioned_files(kits: Path) -> dict[str, str]:
    """SHA-256 of every file provisioning wrote into every kit (``startup/``, ``local/``,
    ``readme.txt``); a running site writes only its logs, data and run folders beside them."""
    files = [p for kit in sorted(kits.iterdir()) if kit.is_dir()
             for p in [kit / "readme.txt", *sorted((kit / "startup").rglob("*")), *sorted((kit / "local").rglob("*"))]
             if p.is_file()]
    return {str(p.relative_to(kits)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _stop(folder: Path, pids: list[int]) -> None:
    """Stop ``pids`` and every process started from ``folder`` (FLARE's job processes), by PID."""
    procs = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            procs[pid] = proc
            procs.update((c.pid, c) for c in proc.children(recursive=True))
    for proc in psutil.process_iter(["pid", "cmdline"]):
        args = proc.info["cmdline"] or []
        if proc.pid != os.getpid() and any(a == str(folder) or a.startswith(f"{folder}{os.sep}") for a in args):
            procs.setdefault(proc.pid, proc)
    terminate(list(procs.values()), grace=5)


def _forget(state: PocState, site: str) -> None:
    """Have the server drop ``site`` (FLARE's remove_client) and wait until it lists the four again."""
    sess = poc.admin_session(state)
    try:
        with contextlib.suppress(Exception):  # not connected any more: nothing to release
            sess.remove_client(site)
        deadline = time.monotonic() + 30
        while poc.connected_clients(sess) != SITES and time.monotonic() < deadline:
            time.sleep(0.5)
        assert poc.connected_clients(sess) == SITES, "the shared consortium still lists the added site"
    finally:
        sess.close()


@contextlib.contextmanager
def _restored(workspace: Path, project_name: str):
    """The POC's state files as they are now, put back afterwards."""
    files = [workspace / "project.yml", workspace / STATE_FILE, workspace / project_name / "state" / "cert.json"]
    saved = {f: f.read_bytes() for f in files}
    try:
        yield
    finally:
        for f, data in saved.items():
            f.write_bytes(data)


def _job_for(tmp_path: Path, sites: list[str]) -> Path:
    """seg_fedavg on ``sites`` only, one short round (each site trains on the data it generated)."""
    job = Path(shutil.copytree(JOBS / "seg_fedavg", tmp_path / "seg_new_site"))
    meta = json.loads((job / "meta.json").read_text())
    meta.update(deploy_map={"app": ["server", *sites]}, min_clients=len(sites))
    (job / "meta.json").write_text(json.dumps(meta))
    server_file, client_file = (job / "app" / "config" / f for f in ("config_fed_server.json", "config_fed_client.json"))
    server = json.loads(server_file.read_text())
    sag = next(w for w in server["workflows"] if w["id"] == "scatter_and_gather")["args"]
    sag.update(num_rounds=1, min_clients=len(sites))
    next(c for c in server["components"] if c["id"] == "aggregator")["args"]["min_accepted"] = len(sites)
    server_file.write_text(json.dumps(server))
    client = json.loads(client_file.read_text())
    client["executors"][0]["executor"]["args"].update(epochs=1, personalise_epochs=1)
    client_file.write_text(json.dumps(client))
    return job


def test_added_site_joins_without_touching_existing_kits_and_trains(poc_consortium, project, tmp_path):
    name = "basel"
    workspace, kits = Path(poc_consortium.workspace), Path(poc_consortium.kits)
    before = _provisioned_files(kits)
    profiles = tmp_path / "profiles.json"
    profiles.write_text(json.dumps({"sites": {name: {"n_images": 16, "seed": 15}}}))
    with _restored(workspace, poc_consortium.project_name):
        try:
            kit = add_site(name, ORG, workspace, project)
            state = start_in_poc(name, workspace, profiles, echo=lambda _: None)

            after = _provisioned_files(kits)
            assert {k: after.get(k) for k in before} == before
            assert {f"{name}/startup/client.crt", f"{name}/startup/client_context.tenseal"} <= set(after)
            assert (kit / "startup" / "rootCA.pem").read_bytes() == (kits / "cleveland" / "startup" / "rootCA.pem").read_bytes()

            folder = submit_and_follow(state, _job_for(tmp_path, [name, "cleveland"]), tmp_path / "results",
                                       timeout=120, echo=lambda _: None)
            results = load_results(folder)
            assert all(name in c for c in results.rounds["contributors"])
            assert name in results.n_test.index
        finally:
            entry = next((p for p in (PocState.load(workspace / STATE_FILE) or poc_consortium).procs if p.site == name), None)
            _stop(kits / name, [entry.pid] if entry is not None and alive(entry) else [])
            shutil.rmtree(kits / name, ignore_errors=True)
            _forget(poc_consortium, name)
    assert _provisioned_files(kits) == before


def test_a_kit_from_the_request_flow_connects_to_the_running_consortium(poc_consortium, project, tmp_path):
    from consortium.provisioning.distributed.approve import approve
    from consortium.provisioning.distributed.bundle import Bundle
    from consortium.provisioning.distributed.package import package
    from consortium.provisioning.distributed.request import request_site

    name, workspace = "geneva", Path(poc_consortium.workspace)
    with _restored(workspace, poc_consortium.project_name):
        proc = None
        try:
            request = request_site(name, ORG, tmp_path / "hospital" / "request", project)
            bundle = approve(request, workspace, project, tmp_path / "admin", add_site=True)
            fingerprint = Bundle.read(bundle)[0].manifest["rootca_fingerprint"]
            kit = package(bundle, request.parent, fingerprint, tmp_path / "hospital" / "ws")

            proc, log = poc._start(kit, "nvflare.private.fed.app.client.client_train", "fed_client.json",
                                   [f"uid={name}", f"org={ORG}"])
            sess = poc.admin_session(poc_consortium)
            try:
                deadline = time.monotonic() + 30
                while name not in poc.connected_clients(sess) and proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.5)
                assert name in poc.connected_clients(sess), log.read_text()[-2000:]
            finally:
                sess.close()
        finally:
            if proc is not None:
                _stop(tmp_path / "hospital" / "ws", [proc.pid])
                _forget(poc_consortium, name)
