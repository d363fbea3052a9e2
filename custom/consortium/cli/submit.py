"""Submit a job through the FLARE admin API (the admin console's path), follow it round by round,
download its result."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from consortium.aggregation.round_summary import RoundSummary
from consortium.cli.job_check import check_job
from consortium.cli.poc import PocError, PocState, admin_session
from consortium.flare_files import PROGRESS_FILE

FINISHED = "FINISHED"
COMPLETED = "FINISHED:COMPLETED"


def _new_rounds(path: Path, seen: int) -> list[RoundSummary]:
    """Rounds after the first ``seen`` in a progress file that FLARE may be writing, archiving or
    deleting right now: anything unreadable is read again on the next call."""
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return []
    out = []
    for line in lines[seen:]:
        try:
            record = json.loads(line)
            out.append(RoundSummary(**{k: record[k] for k in RoundSummary.__dataclass_fields__ if k in record}))
        except (json.JSONDecodeError, TypeError, KeyError):
            break  # a line being written; read it next time
    return out


def submit_and_follow(state: PocState, job: Path, results_dir: Path, timeout: float = 900.0, echo=print) -> Path:
    """Validate and submit ``job``; echo one line per round; return the downloaded result folder."""
    meta = check_job(job, sites=state.clients)
    sess = admin_session(state)
    try:
        with tempfile.TemporaryDirectory(prefix="consortium-submit-") as tmp:
            # FLARE signs the submitted folder in place: sign a copy, never the user's job folder
            copy = Path(shutil.copytree(job, Path(tmp) / job.resolve().name))
            job_id = sess.submit_job(str(copy))
        echo(f"submitted {meta.get('name', job.name)} as job {job_id}")
        progress = state.server_dir() / job_id / PROGRESS_FILE
        seen, deadline, status = 0, time.monotonic() + timeout, ""
        while True:
            status = sess.get_job_meta(job_id).get("status", "")
            for summary in _new_rounds(progress, seen):
                echo(summary.line(len(state.clients)))
                seen += 1
            if status.startswith(FINISHED):
                break
            if time.monotonic() > deadline:
                sess.abort_job(job_id)
                raise PocError(f"job {job_id} did not finish within {timeout:.0f} s (status {status}); aborted it")
            time.sleep(0.25)
        if status != COMPLETED:
            raise PocError(f"job {job_id} ended with status {status}; see {state.server_dir() / job_id / 'log.txt'}")
        results_dir.mkdir(parents=True, exist_ok=True)
        folder = Path(sess.download_job_result(job_id, str(results_dir.resolve())))
        # FLARE archives the run folder before it reports FINISHED: the last rounds are in the result
        for summary in _new_rounds(folder / "workspace" / PROGRESS_FILE, seen):
            echo(summary.line(len(state.clients)))
        echo(f"job {job_id} {status}; result downloaded to {folder}")
        return folder
    finally:
        sess.close()
