"""Continue a POC job whose server died (and was restarted) from the last version in its registry."""

from __future__ import annotations

import tempfile
from pathlib import Path

from consortium.admin import models
from consortium.poc.session import running_state
from consortium.poc.state import PocError


def resume(workspace: Path, job_id: str, results: Path, timeout: float = 900.0, echo=print) -> Path:
    """Continue POC job ``job_id`` from the last version in its registry, for the rounds left of its
    plan; its stuck RUNNING record is cleared first. Returns the new job's downloaded result."""
    from consortium.jobs.submit import submit_and_follow
    from consortium.jobs.watch import SiteWatch
    from consortium.registry import ModelRegistry

    state = running_state(workspace)
    run = state.server_dir() / job_id
    if not run.is_dir():
        raise PocError(f"{run}: no run folder for job {job_id} on this POC's server")
    if state.server in SiteWatch(state, job_id).job_processes():
        raise PocError(f"job {job_id} is still running on the server; nothing to resume")
    latest = ModelRegistry.of_run(run).latest()
    end = models.planned_end(models.job_config(run)[1], run)
    if latest.version >= end:
        raise PocError(f"job {job_id} saved version {latest.version}, its last planned round: nothing to resume")
    was = models.clear_stuck_record(Path(state.workspace) / "jobs-storage", job_id,
                                    f"server died at version {latest.version}; resumed by `consortium job resume`")
    echo(f"job {job_id}: record was {was or 'missing'}; resuming from version {latest.version} "
         f"({end - latest.version} rounds left of {end})")
    with tempfile.TemporaryDirectory(prefix="consortium-resume-") as tmp:
        job = models.continuation_job(run, latest.version, Path(tmp) / "job", label="resume")
        return submit_and_follow(state, job, results, timeout=timeout, echo=echo)
