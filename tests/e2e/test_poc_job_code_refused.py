"""Issue 21's job-code exploits against the real POC (server and four sites as FLARE processes,
kits from project.yml): submitted by a hospital's lead with FLARE's own API, each is refused when
the server deploys it (the kit's job-content validator, naming the file or the component and the
rule), no site ever receives it, the server's audit trail records the refusal, and the sentinel
the exploit would write never exists. A shipped job still completes under the closed list: FLARE
checks a job app's components only, not the site-policy components (privacy.json filters, the
audit trails) that are not on it."""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path

import pytest

from conftest import LEAD, wait_finished
from conftest import server_trail_records as trail_records
from security.job_exploits import CLI_RULE, CONTENT_RULE, MAIN, direct_exploit, export_argv, nested_model_exploit, yaml_stage

pytestmark = pytest.mark.poc
SITES = ("cleveland", "hungary", "switzerland", "va-long-beach")


def wait_refused(state, job_id: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        hits = [r for r in trail_records(state) if r["event"] == "job_refused" and r["job_id"] == job_id]
        if hits:
            return hits[-1]
        assert time.monotonic() < deadline, f"job {job_id} not in the server trail; last: {trail_records(state)[-3:]}"
        time.sleep(0.5)


@pytest.fixture
def lead_session(poc_consortium):
    from nvflare.fuel.flare_api.flare_api import new_secure_session

    with contextlib.redirect_stdout(io.StringIO()):
        sess = new_secure_session(LEAD, str(Path(poc_consortium.kits) / LEAD), timeout=10.0)
    try:
        yield sess
    finally:
        sess.close()


def test_each_exploit_is_refused_at_the_server_never_reaches_a_site_and_is_in_the_audit_trail(
        poc_consortium, lead_session, tmp_path):
    sentinel = tmp_path / "sentinel"
    exploits = {
        "direct": (direct_exploit(tmp_path, export_argv(sentinel)), f"components[0].path = '{MAIN}'", CLI_RULE),
        "yaml stage": (yaml_stage(tmp_path, sentinel), "config/project.yml", CONTENT_RULE),
        "nested model": (nested_model_exploit(tmp_path, export_argv(sentinel)), f"components[0].args.model.path = '{MAIN}'",
                         CLI_RULE),
    }
    submitted = {name: (lead_session.submit_job(str(job)), names, rule) for name, (job, names, rule) in exploits.items()}
    for name, (job_id, names, rule) in submitted.items():
        meta = wait_finished(lead_session, job_id)
        detail = " | ".join(meta.get("job_deploy_detail", []))
        assert meta["status"] == "FINISHED:FAILED_TO_RUN", (name, meta["status"], detail)
        assert "server: job content refused: " in detail and names in detail and rule in detail, (name, detail)
        refused = wait_refused(poc_consortium, job_id)
        recorded = " | ".join(refused["detail"])
        assert names in recorded and rule in recorded, (name, recorded)
        assert not any((Path(poc_consortium.kits) / site / job_id).exists() for site in SITES)  # never deployed
    assert not sentinel.exists()


def test_a_shipped_job_completes_under_the_closed_list(poc_consortium, completed_heart_job):
    job_id, meta = completed_heart_job.id, completed_heart_job.meta  # heart_fedavg submitted by LEAD (conftest)
    assert meta["status"] == "FINISHED:COMPLETED", meta.get("job_deploy_detail")
    assert not [r for r in trail_records(poc_consortium) if r["event"] == "job_refused" and r["job_id"] == job_id]
