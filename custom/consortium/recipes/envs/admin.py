"""A consortium that runs already: the local POC of ``consortium poc up``, or a production one
reached through an admin's startup kit."""

from __future__ import annotations

import tempfile
from pathlib import Path

from nvflare.apis.job_def import DEFAULT_STUDY
from nvflare.job_config.api import FedJob
from nvflare.recipe.prod_env import ProdEnv
from nvflare.recipe.spec import ExecEnv

from consortium.defaults import DEFAULT_PROJECT, default_workspace
from consortium.provisioning.project import Project
from consortium.recipes.envs.checks import checked_export, load_project
from consortium.recipes.job import FolderJob


class ConsortiumPocEnv(ExecEnv):
    """The running local consortium of ``consortium poc up``: a job is checked against its kits'
    allow-list and sites, submitted as the project admin, followed round by round (as ``consortium
    submit`` does) and its result downloaded into ``results``.

    Args:
        workspace: the POC workspace (default: ``consortium poc up``'s).
        results: where job results are downloaded.
        timeout: seconds before a job is aborted.
    """

    def __init__(self, *, workspace: Path | str | None = None, results: Path | str = "results", timeout: float = 900.0,
                 echo=print, extra: dict | None = None) -> None:
        super().__init__(extra)
        self.workspace = Path(workspace) if workspace is not None else default_workspace()
        self.results, self.timeout, self.echo = Path(results), timeout, echo
        self._downloaded: dict[str, Path] = {}

    def state(self):
        from consortium.poc.session import running_state

        return running_state(self.workspace)

    def deploy(self, job: FedJob) -> str:
        from consortium.jobs.submit import submit_and_follow

        state = self.state()
        with tempfile.TemporaryDirectory(prefix="consortium-job-") as tmp:
            if isinstance(job, FolderJob):
                folder = job.folder
            else:
                job.export_job(tmp)
                folder = Path(tmp) / job.name
            result = submit_and_follow(state, folder, self.results, timeout=self.timeout, echo=self.echo)
        self._downloaded[result.name] = result  # FLARE downloads a job's result into <results>/<job id>
        return result.name

    def _session(self):
        from consortium.poc.lifecycle import admin_session

        return admin_session(self.state())

    def get_job_status(self, job_id: str) -> str | None:
        sess = self._session()
        try:
            return sess.get_job_meta(job_id).get("status")
        finally:
            sess.close()

    def abort_job(self, job_id: str) -> None:
        sess = self._session()
        try:
            sess.abort_job(job_id)
        finally:
            sess.close()

    def get_job_result(self, job_id: str, timeout: float = 0.0) -> str | None:
        folder = self._downloaded.get(job_id)
        return str(folder) if folder is not None else None

    def stop(self, clean_up: bool = False) -> None:
        """Nothing: the consortium belongs to ``consortium poc up`` (``consortium poc down`` stops it)."""


class ConsortiumProdEnv(ProdEnv):
    """A provisioned consortium through an admin's startup kit (``consortium provision``): the job
    is checked against project.yml's sites and allow-list, then submitted with FLARE's ProdEnv;
    ``get_result`` downloads the result into the kit's transfer folder and returns it.

    Args:
        startup_kit_location: the admin's kit folder (``<kits>/<admin name>``).
        username: the admin (default: the kit folder's name, as provisioning names it).
        project: project.yml the kits were made from.
    """

    def __init__(self, startup_kit_location: Path | str, *, username: str | None = None,
                 project: Project | Path | str = DEFAULT_PROJECT, login_timeout: float = 5.0, study: str = DEFAULT_STUDY,
                 extra: dict | None = None) -> None:
        kit = Path(startup_kit_location)
        super().__init__(str(kit), login_timeout=login_timeout, username=username or kit.name, study=study, extra=extra)
        self.project = load_project(project)

    def deploy(self, job: FedJob) -> str:
        with checked_export(job, self.project):
            pass
        return super().deploy(job)
