"""The server's own audit in the real POC: a refused admin command is in its chained trail and in
FLARE's audit.log, the trail verifies, a finished job's FLARE audit log is kept after FLARE deletes
the job's run folder, a job carrying custom code is refused at deployment (BYOC off for every
role) and recorded, and a job's site trails are signed and anchored in the server's trail."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import time
from pathlib import Path

import pytest

from conftest import job_with_rounds, wait_finished
from conftest import server_trail_records as trail_records
from consortium.audit.chain import TRAIL_FILE
from consortium.cli import audit as audit_cli
from consortium.poc import lifecycle as poc

pytestmark = pytest.mark.poc
SITES = ("cleveland", "hungary", "switzerland", "va-long-beach")


def server_ws(state) -> Path:
    return state.server_dir()


def wait_for_record(state, match, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        hits = [r for r in trail_records(state) if match(r)]
        if hits:
            return hits[-1]
        assert time.monotonic() < deadline, f"no such record in the server trail; last: {trail_records(state)[-3:]}"
        time.sleep(0.5)


def job_copy(tmp_path: Path, rounds: int = 1) -> Path:
    return job_with_rounds("heart_fedavg", tmp_path, rounds)


def test_the_server_audit_started_on_the_signed_policies(poc_consortium):
    started = [r for r in trail_records(poc_consortium) if r["event"] == "server_audit_started"]
    assert started and started[-1]["policies_signed"] is True
    assert "nvflare.fuel.hci.server.authz.AuthzFilter.pre_command" in started[-1]["patched"]


def test_a_members_refused_submit_is_in_the_server_audit(poc_consortium, tmp_path):
    from nvflare.fuel.flare_api.api_spec import AuthorizationError
    from nvflare.fuel.flare_api.flare_api import new_secure_session

    user = "viewer@va-long-beach.org"
    with contextlib.redirect_stdout(io.StringIO()):
        sess = new_secure_session(user, str(Path(poc_consortium.kits) / user), timeout=10.0)
    try:
        with pytest.raises(AuthorizationError, match="not authorized"):
            sess.submit_job(str(job_copy(tmp_path)))
    finally:
        sess.close()

    denied = wait_for_record(poc_consortium, lambda r: r["event"] == "admin_command_denied" and r["user"] == user, 10)
    assert (denied["role"], denied["org"], denied["outcome"]) == ("member", "va_long_beach", "not_authorized")
    assert denied["command"].split()[0] == "job_mgmt.submit_job"  # FLARE's scoped command name
    flare_log = (server_ws(poc_consortium) / "audit.log").read_text()
    assert any(f"[U:{user}][A:job_mgmt.submit_job" in line and "[DENIED][O:va_long_beach][Role:member]" in line
               for line in flare_log.splitlines())


def test_a_finished_jobs_audit_log_is_kept_after_flare_deletes_its_run_folder(poc_consortium, completed_heart_job):
    job_id = completed_heart_job.id
    assert completed_heart_job.meta["status"] == "FINISHED:COMPLETED"

    kept = wait_for_record(poc_consortium, lambda r: r.get("job_id") == job_id and r["event"].startswith("job_audit"))
    assert kept["event"] == "job_audit_kept", kept
    assert not (server_ws(poc_consortium) / job_id).exists()  # FLARE archived and deleted the run folder
    data = (server_ws(poc_consortium) / "audit" / kept["file"]).read_bytes()
    assert kept["file"] == f"jobs/{job_id}/audit.log" and hashlib.sha256(data).hexdigest() == kept["sha256"]
    assert f"[J:{job_id}]" in data.decode()  # FLARE's per-job task events


def test_the_servers_chained_trail_and_kept_logs_verify(poc_consortium, capsys):
    args = audit_cli.argparse.Namespace(site_workspace=server_ws(poc_consortium))
    assert audit_cli.run(args) == 0, capsys.readouterr().err
    assert "intact" in capsys.readouterr().out


def test_a_job_carrying_custom_code_is_refused_at_deployment_and_recorded(poc_consortium, tmp_path):
    job = job_copy(tmp_path)
    (job / "app" / "custom").mkdir()
    (job / "app" / "custom" / "extra.py").write_text("print('custom code')\n")
    sess = poc.admin_session(poc_consortium)  # the project admin: every right but byoc
    try:
        job_id = sess.submit_job(str(job))  # accepted: FLARE checks BYOC when it deploys
        meta = wait_finished(sess, job_id, timeout=60)
    finally:
        sess.close()

    assert meta["status"] == "FINISHED:FAILED_TO_RUN"
    assert any(d.startswith("server: BYOC not permitted") for d in meta["job_deploy_detail"]), meta["job_deploy_detail"]
    refused = wait_for_record(poc_consortium, lambda r: r["event"] == "job_refused" and r["job_id"] == job_id, 10)
    assert any(d.startswith("server: BYOC not permitted") for d in refused["detail"])
    assert not any((Path(poc_consortium.kits) / site / job_id).exists() for site in SITES)  # never deployed to a site


@pytest.fixture
def heads_declared(poc_consortium):
    """The server kit declares the trail heads component (consortium.flare.audit.server_heads) in
    ``startup/``, where the kit builder wrote it before FLARE signed the kit."""
    from consortium.flare.kit_policies import DECLARATION

    for name in DECLARATION:
        assert (server_ws(poc_consortium) / "startup" / name).is_file(), name
    return DECLARATION


def _verify(*argv) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = audit_cli.main(["verify", *map(str, argv)])
    return rc, out.getvalue() + err.getvalue()


def test_a_jobs_site_trails_are_signed_and_anchored_in_the_servers_trail(
        poc_consortium, heads_declared, completed_heart_job, tmp_path):
    from consortium.audit.chain import HEAD_FILE, AuditTrail, Link, canonical_json
    from consortium.audit.signing import kit_signer

    job_id = completed_heart_job.id
    assert completed_heart_job.meta["status"] == "FINISHED:COMPLETED"

    kits, server = Path(poc_consortium.kits), server_ws(poc_consortium)
    heads = [r for r in trail_records(poc_consortium) if r["event"] == "site_head" and r["job"] == job_id]
    assert {h["site"] for h in heads} == set(SITES)
    for site in SITES:
        lines = {e["seq"]: e for e in map(json.loads, (kits / site / "audit" / TRAIL_FILE).read_text().splitlines())}
        assert all("sig" in e for e in lines.values())
        for h in (h for h in heads if h["site"] == site):  # each head the server holds is that result's own line
            assert lines[h["seq"]]["hash"] == h["hash"] and lines[h["seq"]]["record"]["event"] == "result_sent"
        received = [e["record"] for e in lines.values() if e["record"].get("job") == job_id and e["record"]["event"] == "task_received"]
        assert received and all(r["server_head"] for r in received)  # and each task the server's head
        rc, out = _verify(kits / site, "--against", server)
        assert rc == 0 and f"every line signed by {site!r}" in out and "agrees with the server's" in out, out

    # cleveland, holding its own key, rewrites its last sent result: signatures hold, the server's copy does not
    head = max((h for h in heads if h["site"] == "cleveland"), key=lambda h: h["seq"])
    last = head["seq"]
    copy = tmp_path / "cleveland_rewritten"
    shutil.copytree(kits / "cleveland" / "audit", copy / "audit")
    kept = (copy / "audit" / TRAIL_FILE).read_text().splitlines(keepends=True)[:last - 1]
    (copy / "audit" / TRAIL_FILE).write_text("".join(kept))
    before = json.loads(kept[-1])
    (copy / "audit" / HEAD_FILE).write_text(canonical_json(Link(before["seq"], before["hash"]).to_dict()) + "\n")
    AuditTrail(copy / "audit", signer=kit_signer(kits / "cleveland")).append(
        {"event": "result_sent", "site": "cleveland", "job": job_id, "task": "train", "result_sha256": "0" * 64})

    rc, out = _verify(copy, "--kit", kits / "cleveland")
    assert rc == 0, out  # alone, the rewrite holds
    rc, out = _verify(copy, "--kit", kits / "cleveland", "--against", server)
    assert rc == 1 and f"line {last}: rewritten: record {last} (job {job_id}, task {head['task']})" in out, out


def test_a_site_whose_trail_cannot_be_written_tells_the_server_why_and_its_trail_is_untouched(
        poc_consortium, heads_declared, tmp_path):
    cleveland = Path(poc_consortium.kits) / "cleveland"
    trail = cleveland / "audit" / TRAIL_FILE
    before = trail.read_bytes() if trail.exists() else None
    aside = trail.with_name("trail.jsonl.aside")
    if before is not None:
        trail.rename(aside)
    trail.parent.mkdir(exist_ok=True)
    trail.mkdir()  # from now on cleveland's trail can be neither read nor appended
    job = job_copy(tmp_path)  # with seconds, not the job's defaults, of waiting for the site that refuses
    server_file = job / "app" / "config" / "config_fed_server.json"
    server = json.loads(server_file.read_text())
    by_id = {c["id"]: c["args"] for c in server["components"] + server["workflows"]}
    by_id["standardisation"].update(wait_time_after_min_received=1)
    by_id["scatter_and_gather"].update(wait_time_after_min_received=1)
    by_id["cross_site_eval"].update(submit_model_timeout=5, validation_timeout=5)
    server_file.write_text(json.dumps(server))
    sess = poc.admin_session(poc_consortium)
    try:
        job_id = sess.submit_job(str(job))
        meta = wait_finished(sess, job_id, timeout=240)
    finally:
        sess.close()
        trail.rmdir()
        if before is not None:
            aside.rename(trail)

    assert meta["status"] == "FINISHED:COMPLETED"  # the three other sites carry the job (min_clients 3)
    missing = [r for r in trail_records(poc_consortium)
               if r["event"] == "site_head_missing" and r["job"] == job_id and r["site"] == "cleveland"]
    assert missing and missing[0]["return_code"] == "AUDIT_FAILED"
    assert missing[0]["refusal"] == "audit trail not writable at cleveland"  # the server knows why, not just "absent"
    assert (trail.read_bytes() if trail.exists() else None) == before  # nothing was written to it meanwhile
