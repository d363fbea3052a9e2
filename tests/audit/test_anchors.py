"""Cross-anchoring: the server keeps every site trail head a result carried, the site keeps the
server's head from every task. A trail rewritten even with its own kit key (which the signature
check cannot catch), cut short with a new head, or deleted, disagrees with the other side's copy,
and `audit verify SITE --against SERVER` names the record and job."""

from __future__ import annotations

import argparse
import json
import shutil

import pytest
from audit_kits import RootCA

from consortium.audit.anchors import head_value, site_head_record
from consortium.audit.chain import HEAD_FILE, TRAIL_FILE, AuditTrail, Link, canonical_json
from consortium.audit.signing import kit_signer
from consortium.cli import audit as audit_cli


def cli(*argv) -> int:
    ap = argparse.ArgumentParser(prog="consortium")
    audit_cli.add_parser(ap.add_subparsers(dest="command", required=True))
    return audit_cli.run(ap.parse_args(["audit", *map(str, argv)]))


def run_job(site: AuditTrail, server: AuditTrail, job: str, rounds: int = 2) -> None:
    """What a job leaves: the site records each task with the server's head, the server each result's head."""
    site.append({"event": "job_started", "site": "cleveland", "job": job})
    for r in range(rounds):
        site.append({"event": "task_received", "site": "cleveland", "job": job, "task": "train", "round": r,
                     "server_head": head_value(server.end())})
        head = site.append({"event": "result_sent", "site": "cleveland", "job": job, "task": "train", "round": r})
        server.append(site_head_record("cleveland", job, "train", f"{job}-{r}", head_value(head), "OK"))


@pytest.fixture
def kits(tmp_path):
    ca = RootCA()
    site_kit, server_kit = ca.kit(tmp_path / "cleveland", "cleveland"), ca.kit(tmp_path / "server", "server", server=True)
    site = AuditTrail(site_kit / "audit", signer=kit_signer(site_kit))
    server = AuditTrail(server_kit / "audit", signer=kit_signer(server_kit))
    server.append({"event": "server_audit_started"})
    run_job(site, server, "job1")
    run_job(site, server, "job2")
    return site_kit, server_kit


def rewrite_from(kit, seq: int, signer) -> None:
    """Keep records 1..seq-1 with their head, then append others signed with ``signer``."""
    trail = kit / "audit" / TRAIL_FILE
    keep = trail.read_text().splitlines(keepends=True)[:seq - 1]
    trail.write_text("".join(keep))
    last = json.loads(keep[-1])
    (kit / "audit" / HEAD_FILE).write_text(canonical_json(Link(last["seq"], last["hash"]).to_dict()) + "\n")
    t = AuditTrail(kit / "audit", signer=signer)
    t.append({"event": "result_sent", "site": "cleveland", "job": "job2", "task": "train", "round": 0, "note": "other"})


def test_a_sites_trail_agrees_with_the_servers_heads(kits, capsys):
    site, server = kits
    assert cli("verify", site, "--against", server) == 0
    assert "agrees with the server's 4 heads of cleveland's trail (last: record 10)" in capsys.readouterr().out


def test_a_trail_rewritten_with_the_sites_own_key_passes_alone_and_is_named_against_the_server(kits, capsys):
    site, server = kits
    rewrite_from(site, 9, kit_signer(site))  # from record 9 (job2's second task): one other line instead of two

    assert cli("verify", site) == 0  # chain and signatures hold: the site's own key signed it
    capsys.readouterr()
    assert cli("verify", site, "--against", server) == 1
    err = capsys.readouterr().err
    assert "record 10 (job job2, task train): deleted" in err


def test_a_rewritten_result_line_is_named_by_its_line(kits, capsys):
    site, server = kits
    rewrite_from(site, 8, kit_signer(site))  # record 8 is job2's first result_sent

    assert cli("verify", site, "--against", server) == 1
    assert "line 8: rewritten: record 8 (job job2, task train) has hash" in capsys.readouterr().err


def test_a_deleted_trail_is_reported_as_deleted_naming_its_jobs(kits, capsys):
    site, server = kits
    shutil.rmtree(site / "audit")

    assert cli("verify", site) == 2  # alone: the old report, "no audit trail here"
    assert "no audit trail here" in capsys.readouterr().err
    assert cli("verify", site, "--against", server) == 1
    assert "deleted: the server holds 4 heads of cleveland's trail (up to record 10 (job job2, task train); jobs " \
           "job1, job2)" in capsys.readouterr().err


def test_an_exported_head_list_checks_the_site_away_from_the_server(kits, tmp_path, capsys):
    site, server = kits
    assert cli("export-heads", server, "--out", tmp_path / "heads.json") == 0
    assert "4 heads" in capsys.readouterr().out
    assert cli("verify", site, "--against", tmp_path / "heads.json") == 0
    rewrite_from(site, 8, kit_signer(site))
    assert cli("verify", site, "--against", tmp_path / "heads.json") == 1
    assert "line 8: rewritten" in capsys.readouterr().err


def test_a_rewritten_server_trail_disagrees_with_the_sites_copy_of_its_heads(kits, capsys):
    site, server = kits
    rewrite_from(server, 2, kit_signer(server))  # the server's trail from its record 2, re-signed with its key

    assert cli("verify", server) == 0  # alone it holds
    assert cli("verify", site, "--against", server) == 1
    assert "the server's trail was rewritten" in capsys.readouterr().err


def test_a_server_trail_forged_without_its_key_proves_nothing(kits, tmp_path, capsys):
    site, server = kits
    rewrite_from(server, 2, kit_signer(RootCA().kit(tmp_path / "mallory", "server", server=True)))

    assert cli("verify", site, "--against", server) == 1
    assert "the server's trail is NOT intact, so its heads prove nothing: line 2: forged" in capsys.readouterr().err


def test_against_a_folder_without_a_server_trail_is_an_error_not_a_pass(kits, tmp_path, capsys):
    site, _ = kits
    (tmp_path / "elsewhere").mkdir()
    assert cli("verify", site, "--against", tmp_path / "elsewhere") == 1
    assert "no server audit trail there" in capsys.readouterr().err
    assert cli("verify", site, "--against", tmp_path / "heads.json") == 1  # neither a folder nor a head list
    assert "not a head list" in capsys.readouterr().err
