"""`consortium demo`: the POC up, each job submitted, followed and reported, the POC down."""

from __future__ import annotations

from pathlib import Path

from consortium.defaults import DEFAULT_JOBS
from consortium.provisioning.project import Project


def demo(project: Project, workspace: Path, jobs: list[Path] | None = None, results: Path = Path("results"),
         port: int | None = None, profiles: Path | None = None) -> list[Path]:
    """Run ``jobs`` (default: :data:`~consortium.defaults.DEFAULT_JOBS`) on a fresh POC; returns their reports."""
    from consortium.jobs.report import poc_site_roots, report
    from consortium.jobs.submit import submit_and_follow
    from consortium.poc import lifecycle as poc

    state = poc.up(project, workspace, port=port, profiles=profiles)
    try:
        return [report(submit_and_follow(state, job, results), poc_site_roots(state)) for job in jobs or DEFAULT_JOBS]
    finally:
        poc.down(workspace)
