"""The denial-audit patch of FLARE's AuthzFilter: pinned to nvflare 2.9.0, refused on any other
FLARE, and recording each refused admin command in the server's chained trail. FLARE's own
AuthzFilter, Connection and FLAuthorizer run here with the consortium's authorization.json; no
FLARE processes."""

from __future__ import annotations

import json

import pytest
from nvflare.fuel.hci.conn import Connection
from nvflare.fuel.hci.proto import MetaStatusValue, make_meta
from nvflare.fuel.hci.reg import CommandEntry
from nvflare.fuel.hci.server.authz import AuthzFilter, PreAuthzReturnCode
from nvflare.fuel.hci.server.constants import ConnProps
from nvflare.fuel.sec.audit import Auditor, AuditService
from nvflare.fuel.sec.authz import AuthorizationService
from nvflare.security.security import FLAuthorizer

from conftest import PROJECT_FILE
from consortium.audit.chain import TRAIL_FILE
from consortium.audit.verify import verify_trail
from consortium.flare.audit import server as server_audit
from consortium.flare.audit.server import (
    PINNED_SOURCES,
    PatchGuardError,
    ServerAuditTrail,
    denial_audit_installed,
    pin_problems,
    source_sha256,
    uninstall_denial_audit,
)

AUTHZ = PROJECT_FILE.parent / "site_policies" / "authorization.json"


def test_the_installed_flare_is_the_one_the_patch_was_checked_against():
    # fails on any FLARE upgrade: re-read AuthzFilter.pre_command and FedAdminServer.__init__, then update the pins
    assert pin_problems() == []


def test_job_runner_still_archives_the_run_folder_before_job_completed():
    # not a patch, but the job audit keeping reads the archive on JOB_COMPLETED: re-check on any FLARE change
    from nvflare.private.fed.server.job_runner import JobRunner

    assert source_sha256(JobRunner._save_workspace) == "cad408e6700a22e7ef5ec4c7c6c65a68e320b0f67b93d13ac7a1d20c9b021ba7"
    assert source_sha256(JobRunner._job_complete_process) == "de790859566aaa0a06ffea743591df9d1886486b76409e16f070b1c7156b43de"


def test_another_flare_version_is_named():
    assert pin_problems(version="2.9.1") == ["nvflare 2.9.1 is installed; the patch is checked against 2.9.0"]


def test_a_changed_flare_method_is_named():
    name = "nvflare.fuel.hci.server.authz.AuthzFilter.pre_command"
    problems = pin_problems(pins={name: "0" * 64})
    assert len(problems) == 1 and problems[0].startswith(f"{name}: source SHA-256 ")


def test_the_server_component_refuses_to_start_on_a_changed_flare(tmp_path, monkeypatch):
    monkeypatch.setitem(PINNED_SOURCES, "nvflare.fuel.hci.server.authz.AuthzFilter.pre_command", "0" * 64)
    with pytest.raises(PatchGuardError, match="the server must not run"):
        ServerAuditTrail(folder=str(tmp_path / "audit"))
    assert not denial_audit_installed()


@pytest.fixture
def server(tmp_path, monkeypatch):
    """The server audit component, FLARE's authorizer with the consortium's policy at the server
    (org 'consortium'), and the patch removed afterwards."""
    monkeypatch.setattr(AuthorizationService, "the_authorizer", FLAuthorizer("consortium", json.loads(AUTHZ.read_text())))
    monkeypatch.setattr(AuditService, "the_auditor", Auditor(str(tmp_path / "audit.log")))  # FLARE's server audit.log
    monkeypatch.chdir(tmp_path)  # an unsigned workspace: no startup/signature.json
    component = ServerAuditTrail(folder="audit")
    try:
        yield component
    finally:
        uninstall_denial_audit()


def command(name: str, user: str, org: str, role: str, authz=lambda conn, args: PreAuthzReturnCode.REQUIRE_AUTHZ):
    conn = Connection(props={ConnProps.USER_NAME: user, ConnProps.USER_ORG: org, ConnProps.USER_ROLE: role,
                             ConnProps.CMD_ENTRY: CommandEntry(None, name, "", "", lambda c, a: None, authz, True, False, None)})
    conn.command = f"{name} /tmp/upload/heart_fedavg"
    return conn, conn.command.split()


def records(tmp_path) -> list[dict]:
    return [json.loads(line)["record"] for line in (tmp_path / "audit" / TRAIL_FILE).read_text().splitlines()]


def test_a_members_refused_submit_is_chained_with_user_role_org_and_reason(server, tmp_path):
    conn, args = command("submit_job", "viewer@va-long-beach.org", "va_long_beach", "member")

    assert AuthzFilter().pre_command(conn, args) is False

    started, denied = records(tmp_path)
    assert started["event"] == "server_audit_started" and started["nvflare"] == "2.9.0"
    assert denied == {"event": "admin_command_denied", "user": "viewer@va-long-beach.org", "org": "va_long_beach",
                      "role": "member", "command": "submit_job /tmp/upload/heart_fedavg", "outcome": "not_authorized",
                      "reason": "Authorization Error: user 'viewer@va-long-beach.org' is not authorized for 'submit_job'"}
    assert verify_trail(tmp_path / "audit").ok
    (line,) = (tmp_path / "audit.log").read_text().splitlines()
    assert "[R:audit/trail.jsonl#2]" in line and "[U:viewer@va-long-beach.org][A:submit_job /tmp/upload/heart_fedavg]" in line
    assert "[DENIED][O:va_long_beach][Role:member] Authorization Error" in line


def test_a_denial_the_trail_cannot_take_stays_refused_and_reaches_flares_log(server, tmp_path, caplog):
    with open(tmp_path / "audit" / TRAIL_FILE, "a") as f:
        f.write('{"cut off')  # a damaged trail: nothing more is appended to it
    conn, args = command("submit_job", "viewer@va-long-beach.org", "va_long_beach", "member")

    assert AuthzFilter().pre_command(conn, args) is False
    assert "[R:audit/trail.jsonl: NOT RECORDED]" in (tmp_path / "audit.log").read_text()
    assert "could not record a denied admin command" in caplog.text


def test_a_leads_submit_passes_and_is_not_recorded(server, tmp_path):
    conn, args = command("submit_job", "scientist@gokvi.hu", "hungarian_institute_of_cardiology", "lead")

    assert AuthzFilter().pre_command(conn, args) is True
    assert [r["event"] for r in records(tmp_path)] == ["server_audit_started"]


def test_a_command_refused_before_the_policy_is_recorded_as_refused(server, tmp_path):
    def no_such_job(conn, args):
        conn.append_error("job abc does not exist", meta=make_meta(MetaStatusValue.INVALID_JOB_ID, "abc"))
        return PreAuthzReturnCode.ERROR

    conn, args = command("abort_job", "it@usz.ch", "university_hospitals_zurich_basel", "org_admin", authz=no_such_job)
    assert AuthzFilter().pre_command(conn, args) is False

    denied = records(tmp_path)[-1]
    assert (denied["outcome"], denied["reason"], denied["user"]) == ("refused", "job abc does not exist", "it@usz.ch")


def test_uninstalling_restores_flares_method():
    uninstall_denial_audit()
    assert AuthzFilter.pre_command is server_audit._ORIGINAL and not denial_audit_installed()
