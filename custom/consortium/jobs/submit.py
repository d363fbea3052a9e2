"""Submit a job through the FLARE admin API (the admin console's path), follow it round by round,
download its result."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from nvflare.apis.job_def import JobMetaKey
from nvflare.fuel.flare_api.api_spec import NoConnection, NoReply, SessionClosed

from consortium.jobs.validate import AllowList, check_job
from consortium.jobs.watch import SiteWatch, first_errors, job_logs
from consortium.poc.lifecycle import PocError, PocState, admin_session
from consortium.poc.state import STATE_FILE, alive
from consortium.protocol.files import PROGRESS_FILE
from consortium.protocol.round_record import RoundRecord
from consortium.reports.job_report import training_status

FINISHED = "FINISHED"
COMPLETED = "FINISHED:COMPLETED"


def _new_rounds(path: Path, seen: int) -> tuple[list[RoundRecord], int]:
    """Rounds after the first ``seen`` lines of a progress file that FLARE may be writing,
    archiving or deleting right now, and the number of lines now read. The last line may be half
    written: read again next time. An unreadable complete line is skipped (not retried forever)."""
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return [], seen
    out = []
    for i in range(seen, len(lines)):
        try:
            out.append(RoundRecord.from_json_line(lines[i], f"{path}: line {i + 1}"))
        except ValueError:
            if i == len(lines) - 1:
                return out, i
        seen = i + 1
    return out, seen


SERVER_GONE = (NoConnection, SessionClosed, NoReply, ConnectionError, TimeoutError)  # what the admin API raises then
LOSS_GRACE_S = 10.0  # after losing a site the job needs, how long FLARE gets to end the job itself


def submit_and_follow(state: PocState, job: Path, results_dir: Path, timeout: float = 900.0, echo=print) -> Path:
    """Validate and submit ``job``; echo one line per round and at once any site that stops
    answering; return the downloaded result folder. A job that cannot finish (too few sites left,
    refused, failed) raises PocError with the reason, the log files that exist and their first
    error lines."""
    meta = check_job(job, sites=state.clients, allowed=AllowList.of_kit(state.server_dir()))
    needed = int(meta.get("min_clients", len(state.clients)))
    sess = admin_session(state)
    try:
        with tempfile.TemporaryDirectory(prefix="consortium-submit-") as tmp:
            # FLARE signs the submitted folder in place: sign a copy, never the user's job folder
            copy = Path(shutil.copytree(job, Path(tmp) / job.resolve().name))
            job_id = sess.submit_job(str(copy))
        echo(f"submitted {meta.get('name', job.name)} as job {job_id}")
        return follow(sess, state, job_id, needed, results_dir, timeout, echo)
    finally:
        try:
            sess.close()
        except Exception:  # a dead server's session cannot say goodbye; nothing is lost
            pass


def server_gone(state: PocState, job_id: str, error: BaseException | None = None) -> str:
    """What to tell the operator when the server stops answering in the middle of ``job_id``."""
    why = f" ({type(error).__name__}: {error})" if error is not None and str(error) else ""
    return (f"job {job_id}: the FLARE server is unreachable{why}; its sites keep their state and the job's saved "
            f"versions are kept. Start the server again (`consortium poc restart server`, or `consortium poc up`), "
            f"then continue the job from its last saved version with `consortium job resume {job_id}`.")


def _server_dead(state: PocState) -> bool:
    """The POC's server process (the one entry that is not a site) is no longer running, as the
    POC's state file records it now (a server restarted since ``state`` was read has a new PID)."""
    now = _current(state)
    return any(alive(p) is None for p in now.procs if p.site not in now.clients)


def _current(state: PocState) -> PocState:
    """``state`` as its workspace's state file holds it now (``state`` itself if there is none)."""
    try:
        return PocState.load(Path(state.workspace) / STATE_FILE) or state
    except PocError:
        return state


def follow(sess, state: PocState, job_id: str, needed: int, results_dir: Path, timeout: float = 900.0,
           echo=print) -> Path:
    """Follow ``job_id`` through the admin session ``sess`` round by round until it ends; return
    its downloaded result. A server that dies meanwhile (its process gone, or the admin API's
    connection errors) is a PocError saying so and naming ``consortium job resume JOB_ID``."""
    state = _current(state)  # a site or server restarted since ``state`` was read: its new PID
    try:
        return _follow(sess, state, job_id, needed, results_dir, timeout, echo)
    except PocError:
        raise
    except Exception as e:  # the admin API's own errors when the server died under it
        if isinstance(e, SERVER_GONE) or _server_dead(state):
            raise PocError(server_gone(state, job_id, e)) from None
        raise


def _follow(sess, state: PocState, job_id: str, needed: int, results_dir: Path, timeout: float, echo) -> Path:
    progress = state.server_dir() / job_id / PROGRESS_FILE
    watch = SiteWatch(state, job_id)
    seen, deadline, status, stranded_at = 0, time.monotonic() + timeout, "", None
    while True:
        if _server_dead(state):
            raise PocError(server_gone(state, job_id))
        job_meta = sess.get_job_meta(job_id)
        status = job_meta.get("status", "")
        rounds, seen = _new_rounds(progress, seen)
        for summary in rounds:
            echo(summary.line(len(state.clients)))
        if status.startswith(FINISHED):
            break
        for loss in watch.check():
            left = watch.remaining()
            echo(f"{loss}. {len(left)} of {len(state.clients)} sites left, the job needs {needed}: "
                 + ("it goes on without it." if len(left) >= needed else
                    f"it cannot finish; stopping it unless FLARE does within {LOSS_GRACE_S:.0f} s."))
            if len(left) < needed and stranded_at is None:
                stranded_at = time.monotonic()
        if stranded_at is not None and time.monotonic() - stranded_at > LOSS_GRACE_S:
            sess.abort_job(job_id)
            raise PocError(f"job {job_id} aborted: {'; '.join(map(str, watch.lost.values()))}. Restart the consortium "
                           f"(`consortium poc down`, `consortium poc up`) and submit again."
                           + _log_hint(state, job_id))
        if time.monotonic() > deadline:
            sess.abort_job(job_id)
            raise PocError(f"job {job_id} did not finish within {timeout:.0f} s (status {status}); aborted it"
                           + _log_hint(state, job_id))
        time.sleep(0.25)
    results_dir.mkdir(parents=True, exist_ok=True)
    if status != COMPLETED:
        raise PocError(_failure(sess, state, job_id, status, job_meta, results_dir, watch))
    folder = Path(sess.download_job_result(job_id, str(results_dir.resolve())))
    # FLARE archives the run folder before it reports FINISHED: the last rounds are in the result
    for summary in _new_rounds(folder / "workspace" / PROGRESS_FILE, seen)[0]:
        echo(summary.line(len(state.clients)))
    training = training_status(folder)
    if training.get("status") == "stopped":
        echo(f"TRAINING STOPPED EARLY: {training.get('reason')}")
    echo(f"job {job_id} {status}; result downloaded to {folder}")
    return folder


def _log_hint(state: PocState, job_id: str, result: Path | None = None) -> str:
    logs = job_logs(state, job_id, result)
    if not logs:
        return ""
    errors = first_errors(logs)
    return ("\nlogs: " + ", ".join(map(str, logs))
            + ("\nfirst errors:\n  " + "\n  ".join(errors) if errors else ""))


def _failure(sess, state: PocState, job_id: str, status: str, job_meta: dict, results_dir: Path, watch: SiteWatch) -> str:
    """Why ``job_id`` ended with ``status``: FLARE's deployment detail (e.g. a refused job), the
    sites lost, the log files that exist and their first error lines."""
    text = f"job {job_id} ended with status {status}"
    detail = job_meta.get(JobMetaKey.JOB_DEPLOY_DETAIL.value)
    if detail:
        text += f"; FLARE says: {detail if isinstance(detail, str) else json.dumps(detail)}"
    if watch.lost:
        text += "; " + "; ".join(map(str, watch.lost.values()))
    result = None
    try:  # a job that ran has a result with the server's log; one refused before it ran has none
        result = Path(sess.download_job_result(job_id, str(results_dir.resolve())))
    except Exception:
        pass
    return text + _log_hint(state, job_id, result)
