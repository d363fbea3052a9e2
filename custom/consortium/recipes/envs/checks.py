"""What every environment does first: the job's folder as it will be deployed, checked against the
consortium as ``consortium job validate`` checks it."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from nvflare.job_config.api import FedJob

from consortium.jobs.validate import AllowList, check_job
from consortium.provisioning.project import Project
from consortium.recipes.job import FolderJob


@contextlib.contextmanager
def checked_export(job: FedJob, project: Project) -> Iterator[Path]:
    """The job's folder as it will be deployed, checked as ``consortium job validate`` checks it (a
    :class:`FolderJob` is checked in place, so errors name the user's files)."""
    sites, allowed = project.clients, AllowList.of_project(project)
    if isinstance(job, FolderJob):
        check_job(job.folder, sites=sites, allowed=allowed)
        yield job.folder
        return
    with tempfile.TemporaryDirectory(prefix="consortium-job-") as tmp:
        job.export_job(tmp)
        folder = Path(tmp) / job.name
        check_job(folder, sites=sites, allowed=allowed)
        yield folder


def load_project(project: Project | Path | str) -> Project:
    """A loaded project.yml (ConfigurationError naming the file when it cannot be read)."""
    return project if isinstance(project, Project) else Project.load(project)


