"""Trail lines signed with the kit key: the forgeries a hash chain lets through (a well-formed line
appended with its hash recomputed and the head updated; a rewritten suffix with a new head) pass
the hash-only check and are named by the signature check; a provisioned kit never writes unsigned."""

from __future__ import annotations

import argparse
import json
import shutil

import pytest
from audit_kits import RootCA

from consortium.audit.chain import HEAD_FILE, TRAIL_FILE, AuditTrail, Link, canonical_json, line_hash
from consortium.audit.signing import KitKeyError, kit_certificate, kit_signer
from consortium.audit.verify import verify_trail
from consortium.cli import audit as audit_cli


@pytest.fixture(scope="module")
def ca():
    return RootCA()


@pytest.fixture
def site(ca, tmp_path):
    """cleveland's kit with a trail of five signed lines."""
    kit = ca.kit(tmp_path / "cleveland", "cleveland")
    trail = AuditTrail(kit / "audit", signer=kit_signer(kit))
    for i in range(5):
        trail.append({"event": "task_received", "site": "cleveland", "round": i})
    return kit


def key(kit):
    return kit_certificate(kit).public_key()


def cli(*argv: str) -> int:
    ap = argparse.ArgumentParser(prog="consortium")
    audit_cli.add_parser(ap.add_subparsers(dest="command", required=True))
    return audit_cli.run(ap.parse_args(["audit", *argv]))


def forge_append(folder, record: dict, signer=None) -> None:
    """What anyone who can write the files does: a well-formed next line, hash recomputed, head updated."""
    AuditTrail(folder, signer=signer).append(record)


def test_every_line_of_a_kits_trail_is_signed_and_verifies_against_its_certificate(site, capsys):
    lines = [json.loads(x) for x in (site / "audit" / TRAIL_FILE).read_text().splitlines()]
    assert all(len(line["sig"]) > 300 for line in lines)  # RSA-2048 PSS, base64
    result = verify_trail(site / "audit", key(site))
    assert result.ok and result.signed and result.lines == 5

    assert cli("verify", str(site)) == 0
    assert "every line signed by 'cleveland'" in capsys.readouterr().out


def test_a_forged_appended_line_passes_the_hash_chain_and_is_named_by_its_signature(site, ca, tmp_path, capsys):
    original = shutil.copytree(site / "audit", tmp_path / "original")
    forge_append(site / "audit", {"event": "result_sent", "site": "cleveland", "round": 5})  # unsigned
    assert verify_trail(site / "audit").ok  # the old, hash-only check: intact

    problem = verify_trail(site / "audit", key(site)).problem
    assert (problem.line, problem.kind) == (6, "unsigned")
    assert cli("verify", str(site)) == 1
    assert "line 6: unsigned" in capsys.readouterr().err

    shutil.rmtree(site / "audit")
    shutil.copytree(original, site / "audit")
    other = ca.kit(tmp_path / "mallory", "cleveland")  # a key of the forger's own, even one the CA signed
    forge_append(site / "audit", {"event": "result_sent", "site": "cleveland", "round": 5}, kit_signer(other))
    assert verify_trail(site / "audit").ok
    assert cli("verify", str(site)) == 1
    assert "line 6: forged" in capsys.readouterr().err


def test_a_rewritten_suffix_with_a_new_head_passes_the_hash_chain_and_fails_the_signature(site, ca, tmp_path, capsys):
    trail = site / "audit" / TRAIL_FILE
    keep = trail.read_text().splitlines(keepends=True)[:2]
    trail.write_text("".join(keep))
    last = json.loads(keep[-1])
    (site / "audit" / HEAD_FILE).write_text(canonical_json(Link(last["seq"], last["hash"]).to_dict()) + "\n")
    forger = kit_signer(ca.kit(tmp_path / "mallory", "mallory"))
    for i in range(3):
        forge_append(site / "audit", {"event": "task_received", "site": "cleveland", "round": 10 + i}, forger)

    assert verify_trail(site / "audit").ok  # hash-only: intact, five lines
    problem = verify_trail(site / "audit", key(site)).problem
    assert (problem.line, problem.kind) == (3, "forged")
    assert cli("verify", str(site)) == 1
    assert "line 3: forged" in capsys.readouterr().err


def test_a_line_whose_signature_was_kept_but_record_edited_is_named(site):
    trail = site / "audit" / TRAIL_FILE
    lines = trail.read_text().splitlines()
    entry = json.loads(lines[3])
    entry["record"]["round"] = 99
    entry["hash"] = line_hash(entry)
    lines[3] = canonical_json(entry)
    trail.write_text("\n".join(lines) + "\n")  # the next line's prev now breaks too: the signature is named first

    problem = verify_trail(site / "audit", key(site)).problem
    assert (problem.line, problem.kind) == (4, "forged")


def test_a_provisioned_kit_without_its_key_refuses_to_sign(ca, tmp_path):
    kit = ca.kit(tmp_path / "hungary", "hungary")
    (kit / "startup" / "client.key").unlink()
    with pytest.raises(KitKeyError, match="client.key"):
        kit_signer(kit)


def test_a_key_that_is_not_the_certificates_is_refused(ca, tmp_path):
    kit = ca.kit(tmp_path / "hungary", "hungary")
    other = ca.kit(tmp_path / "other", "other")
    shutil.copy(other / "startup" / "client.key", kit / "startup" / "client.key")
    with pytest.raises(KitKeyError, match="not the private key"):
        kit_signer(kit)


def test_a_certificate_the_root_ca_did_not_issue_is_refused(site, tmp_path, capsys):
    stranger = RootCA("stranger").kit(tmp_path / "stranger", "cleveland")
    for name in ("client.key", "client.crt"):  # a forger's own kit, named like the site
        shutil.copy(stranger / "startup" / name, site / "startup" / name)
    with pytest.raises(KitKeyError, match="not issued by the root CA"):
        kit_certificate(site)
    assert cli("verify", str(site)) == 1
    assert "not issued by the root CA" in capsys.readouterr().err


def test_without_a_kit_the_trail_is_unsigned_and_verify_says_so_plainly(tmp_path, capsys):
    assert kit_signer(tmp_path) is None  # FLARE's simulator: no startup/rootCA.pem
    AuditTrail(tmp_path / "audit", signer=kit_signer(tmp_path)).append({"event": "job_started"})

    assert cli("verify", str(tmp_path)) == 0
    assert "UNSIGNED" in capsys.readouterr().out


def test_a_copied_audit_folder_of_a_signed_trail_needs_its_kit_to_pass(site, tmp_path, capsys):
    shutil.copytree(site / "audit", tmp_path / "copy" / "audit")
    assert cli("verify", str(tmp_path / "copy")) == 1
    assert "give --kit" in capsys.readouterr().err
    assert cli("verify", str(tmp_path / "copy"), "--kit", str(site)) == 0
