"""`consortium audit verify`: exit 0 on an intact trail, 1 naming the first bad line, 2 without a trail."""

from __future__ import annotations

import argparse

from consortium.audit.chain import AuditTrail
from consortium.cli import audit


def run(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="consortium")
    audit.add_parser(ap.add_subparsers(dest="command", required=True))
    return audit.run(ap.parse_args(argv))


def site_workspace(tmp_path, n=4):
    t = AuditTrail(tmp_path / "audit")
    for i in range(n):
        t.append({"event": "task_received", "round": i})
    return t


def test_an_intact_trail_passes_and_prints_its_last_hash(tmp_path, capsys):
    end = site_workspace(tmp_path).end()

    assert run(["audit", "verify", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "intact, 4 lines" in out and end.hash in out


def test_the_audit_folder_or_the_trail_file_may_be_given_too(tmp_path):
    t = site_workspace(tmp_path)
    assert run(["audit", "verify", str(t.folder)]) == 0
    assert audit.main(["verify", str(t.path)]) == 0


def test_a_tampered_trail_fails_naming_the_line(tmp_path, capsys):
    t = site_workspace(tmp_path)
    lines = t.path.read_text().splitlines(keepends=True)
    t.path.write_text("".join([lines[0], lines[2], lines[1], lines[3]]))

    assert run(["audit", "verify", str(tmp_path)]) == 1
    assert "line 2: reordered" in capsys.readouterr().err


def test_no_trail_is_its_own_error(tmp_path, capsys):
    assert run(["audit", "verify", str(tmp_path)]) == 2
    assert "no audit trail" in capsys.readouterr().err
