"""A job folder as it stands (not a recipe) in FLARE's simulator with the consortium's site policies:
`consortium job simulate`."""

from __future__ import annotations

from pathlib import Path

from consortium.provisioning.project import Project


def simulate(job: Path, workspace: Path, project: Project, threads: int = 4, profiles: Path | None = None) -> int:
    """FLARE's simulator with the site policies (:class:`~consortium.recipes.envs.ConsortiumSimEnv`,
    the environment a recipe's ``job.py`` runs in): the job folder as it stands, checked as
    ``job validate`` checks it; each simulated site gets its imaging data made from ``profiles`` and an
    HE job a key pair for the run. Returns the simulator's exit code."""
    from consortium.recipes.envs import ConsortiumSimEnv
    from consortium.recipes.job import FolderJob

    return ConsortiumSimEnv(project=project, workspace=workspace, threads=threads, profiles=profiles).simulate(FolderJob(job))
