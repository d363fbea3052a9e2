"""A writer stopped between a trail line and its head: a real process killed with SIGKILL at that
point, and a disk that refuses the head. The trail verifies and says "one unheaded line after a
crash"; the next append writes that head first, or appends nothing: never two unheaded lines."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from consortium.audit import chain
from consortium.audit.chain import TRAIL_FILE, AuditTrail, HeadNotWritten, TrailError
from consortium.audit.verify import verify_trail
from consortium.cli import audit as audit_cli

WRITER = textwrap.dedent("""
    import sys, time
    from consortium.audit import chain
    folder, marker = sys.argv[1], sys.argv[2]
    def stopped_before_the_head(self, link):  # the line is written and fsynced; the head is next
        open(marker, "w").write(str(link.seq))
        time.sleep(120)
    chain.AuditTrail._write_head = stopped_before_the_head
    chain.AuditTrail(folder).append({"event": "task_received", "round": 3})
""")


def lines(folder) -> int:
    return len((folder / TRAIL_FILE).read_text().splitlines())


def cli(*argv: str) -> int:
    ap = argparse.ArgumentParser(prog="consortium")
    audit_cli.add_parser(ap.add_subparsers(dest="command", required=True))
    return audit_cli.run(ap.parse_args(["audit", *argv]))


@pytest.fixture
def trail(tmp_path):
    t = AuditTrail(tmp_path / "audit")
    for i in range(3):
        t.append({"event": "task_received", "round": i})
    return t


def test_a_writer_killed_between_the_line_and_its_head_leaves_a_trail_that_verifies_and_goes_on(trail, tmp_path, capsys):
    marker = tmp_path / "line_written"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(trail.folder), str(marker)])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the writer did not reach its head"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL and lines(trail.folder) == 4

    result = verify_trail(trail.folder)
    assert result.ok and result.unheaded and result.end.seq == 4
    assert cli("verify", str(tmp_path)) == 0
    assert "one unheaded line after a crash: record 4" in capsys.readouterr().out

    assert trail.append({"event": "job_ended"}).seq == 5  # the head of record 4 first, then record 5
    result = verify_trail(trail.folder)
    assert result.ok and not result.unheaded and result.end.seq == 5


def test_a_head_the_disk_refuses_leaves_one_unheaded_line_and_nothing_more_is_appended(trail, monkeypatch):
    def disk_full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(chain, "atomic_write", disk_full)
    with pytest.raises(HeadNotWritten) as e:
        trail.append({"event": "task_received", "round": 3})
    assert e.value.link.seq == 4 and "record 4 was appended" in str(e.value)

    with pytest.raises(TrailError, match="head of record 4 cannot be written.*nothing appended"):
        trail.append({"event": "result_sent", "round": 3})
    assert lines(trail.folder) == 4
    result = verify_trail(trail.folder)
    assert result.ok and result.unheaded  # not "the head names record 3 but the trail goes on to record 5"

    monkeypatch.undo()
    assert trail.append({"event": "result_sent", "round": 3}).seq == 5
    assert verify_trail(trail.folder).ok


def test_a_first_line_without_its_head_verifies_as_unheaded(tmp_path, monkeypatch):
    monkeypatch.setattr(chain, "atomic_write", lambda path, data: (_ for _ in ()).throw(OSError("read-only")))
    with pytest.raises(HeadNotWritten):
        AuditTrail(tmp_path).append({"event": "job_started"})
    result = verify_trail(tmp_path)
    assert result.ok and result.unheaded and result.lines == 1
