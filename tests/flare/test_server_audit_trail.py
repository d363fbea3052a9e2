"""The server trail's records and kept job audit logs (consortium.audit.server_trail), and
`consortium audit verify` on a server workspace: no FLARE processes."""

from __future__ import annotations

import argparse
import hashlib

import pytest

from consortium.audit.chain import AuditTrail
from consortium.audit.server_trail import (
    audit_log_from_archive,
    denial_record,
    keep_job_audit,
    kept_file_problems,
)
from consortium.cli import audit as audit_cli

JOB = "810d5949-f473-442b-924c-be77d213ae75"
LOG = b"[E:1][T:2026-11-30 12:48:28][J:810d5949-f473-442b-924c-be77d213ae75][A:train#1]sent task to client 'hungary'\n"


def flare_workspace_archive(tmp_path) -> bytes:
    """A finished job's run folder archived the way FLARE's job store does it (FilesystemStorage)."""
    from nvflare.app_common.storages.filesystem_storage import _write_multi

    run_dir = tmp_path / JOB
    (run_dir / "app_server").mkdir(parents=True)
    (run_dir / "audit.log").write_bytes(LOG)
    (run_dir / "app_server" / "FL_global_model.pt").write_bytes(b"model")
    _write_multi(str(tmp_path / "workspace"), [str(run_dir)])
    return (tmp_path / "workspace").read_bytes()


def server_workspace(tmp_path):
    folder = tmp_path / "server" / "audit"
    trail = AuditTrail(folder)
    trail.append({"event": "server_audit_started"})
    trail.append(keep_job_audit(folder, JOB, audit_log_from_archive(flare_workspace_archive(tmp_path))))
    return tmp_path / "server"


def verify(path) -> int:
    return audit_cli.run(argparse.Namespace(site_workspace=path))


def test_the_audit_log_is_read_from_the_top_of_flares_workspace_archive(tmp_path):
    assert audit_log_from_archive(flare_workspace_archive(tmp_path)) == LOG


def test_an_archive_without_an_audit_log_gives_none_and_a_non_zip_is_named(tmp_path):
    from nvflare.app_common.storages.filesystem_storage import _write_multi

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "log.txt").write_text("x")
    _write_multi(str(tmp_path / "ws.zip"), [str(tmp_path / "run")])
    assert audit_log_from_archive((tmp_path / "ws.zip").read_bytes()) is None
    with pytest.raises(ValueError, match="not a zip"):
        audit_log_from_archive(b"not a zip")


def test_a_kept_log_is_bound_to_the_trail_by_its_digest(tmp_path):
    record = keep_job_audit(tmp_path / "audit", JOB, LOG)

    assert record == {"event": "job_audit_kept", "job_id": JOB, "file": f"jobs/{JOB}/audit.log",
                      "sha256": hashlib.sha256(LOG).hexdigest(), "bytes": len(LOG)}
    assert (tmp_path / "audit" / "jobs" / JOB / "audit.log").read_bytes() == LOG


@pytest.mark.parametrize("job_id", ["../escape", "a/b", "", "."])
def test_a_job_id_that_is_not_a_folder_name_is_refused(tmp_path, job_id):
    with pytest.raises(ValueError, match="not a job id"):
        keep_job_audit(tmp_path, job_id, LOG)


def test_a_denial_outcome_must_be_one_of_two():
    with pytest.raises(ValueError, match="outcome = 'maybe'"):
        denial_record("u", "o", "member", "submit_job x", "maybe", "no")


def test_audit_verify_passes_on_a_server_workspace(tmp_path, capsys):
    ws = server_workspace(tmp_path)
    assert kept_file_problems(ws / "audit") == []
    assert verify(ws) == 0
    assert "intact, 2 lines" in capsys.readouterr().out


def test_audit_verify_names_an_edited_kept_log(tmp_path, capsys):
    ws = server_workspace(tmp_path)
    kept = ws / "audit" / "jobs" / JOB / "audit.log"
    kept.write_bytes(LOG.replace(b"hungary", b"cleveland"))

    assert verify(ws) == 1
    err = capsys.readouterr().err
    assert f"{kept}: changed: its SHA-256 is not the one" in err and "line 2 records" in err


def test_audit_verify_names_a_deleted_kept_log(tmp_path, capsys):
    ws = server_workspace(tmp_path)
    kept = ws / "audit" / "jobs" / JOB / "audit.log"
    kept.unlink()

    assert verify(ws) == 1
    assert f"{kept}: missing (kept at" in capsys.readouterr().err
