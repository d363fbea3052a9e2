"""`consortium submit` survives a server that dies mid-job: one line saying the server is
unreachable and naming `consortium resume JOB_ID`, exit 2, no traceback (POC)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from conftest import job_with_rounds
from consortium.cli import models, poc
from consortium.cli.main import main

pytestmark = pytest.mark.poc


def test_submit_says_the_server_died_and_names_resume(poc_consortium, tmp_path, capsys):
    ws = Path(poc_consortium.workspace)
    done_before = {p.parent.name for p in poc_consortium.server_dir().glob("*/progress.jsonl")}
    killed: list[str] = []

    def kill_server_after_the_first_round():
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not killed:
            for p in poc_consortium.server_dir().glob("*/progress.jsonl"):
                if p.parent.name not in done_before and p.read_text().strip():
                    killed.append(p.parent.name)
                    poc.kill_site(ws, "server", echo=lambda _: None)
                    return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_server_after_the_first_round, daemon=True)
    killer.start()
    try:
        rc = main(["submit", str(job_with_rounds("heart_fedavg", tmp_path, 20)), "--workspace", str(ws),
                   "--results", str(tmp_path / "results"), "--timeout", "240"])
        killer.join(10)
        out, err = capsys.readouterr()
    finally:
        if killed:
            poc.restart_site(ws, "server", echo=lambda _: None)  # the session's other tests need it
            models.clear_stuck_record(ws / "jobs-storage", killed[0], "server killed by a test")

    assert killed, "the server was never killed"
    assert rc == 2 and "Traceback" not in out + err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"consortium: error: job {killed[0]}: the FLARE server is unreachable"), err
    assert f"`consortium resume {killed[0]}`" in line
    assert f"as job {killed[0]}" in out  # it followed the job until the server died
