"""FLARE's simulator as the consortium: project.yml's sites, its class allow-list, each site's
imaging data and, for an HE job, a key pair for the run."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from nvflare.job_config.api import FedJob
from nvflare.recipe.sim_env import WORKSPACE_ROOT, SimEnv

from consortium.defaults import DEFAULT_PROJECT
from consortium.poc.site_data import DEFAULT_PROFILES, prepare_imaging
from consortium.provisioning.project import Project
from consortium.provisioning.provision import simulator_workspace_policies
from consortium.recipes.envs.checks import checked_export, load_project

SIMULATION_RESULT = Path("server") / "simulate_job"  # inside a simulator workspace


def job_encrypts(job: Path) -> bool:
    """Whether a job's sites encrypt their updates (then they need the consortium's CKKS keys)."""
    return any("consortium.flare.he.site." in p.read_text() for p in job.glob("*/config/config_fed_client.json"))


def uses_imaging(job: Path) -> bool:
    """Whether a job's sites run the imaging executor (then they need their imaging data)."""
    return any("SegmentationExecutor" in p.read_text() for p in job.glob("*/config/config_fed_client.json"))


def simulator_he_keys(folder: Path) -> Path:
    """A CKKS key pair for simulator runs (made once per folder): client and server contexts."""
    from consortium.crypto.ckks import make_context, public_copy
    from consortium.flare.he.site import CLIENT_CONTEXT, SERVER_CONTEXT

    if not (folder / CLIENT_CONTEXT).is_file():
        folder.mkdir(parents=True, exist_ok=True)
        ctx = make_context()
        (folder / CLIENT_CONTEXT).write_bytes(ctx.serialize(save_secret_key=True))
        (folder / SERVER_CONTEXT).write_bytes(public_copy(ctx).serialize())
    return folder


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` while the simulator starts (it inherits the environment)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class ConsortiumSimEnv(SimEnv):
    """FLARE's simulator, one thread per site by default, with the consortium's site policies.

    Args:
        project: project.yml (or a loaded Project): its client sites are simulated and its class
            allow-list is enforced.
        workspace_root: each job runs in ``<workspace_root>/<job name>`` (FLARE's default root;
            ``NVFLARE_SIMULATOR_WORKSPACE_ROOT`` overrides it, as for SimEnv).
        workspace: one fixed simulator workspace instead (``consortium job simulate -w``).
        threads: sites trained at once (default: all).
        profiles: scanner profiles from which each site makes its imaging data (imaging jobs).
    """

    def __init__(self, *, project: Project | Path | str = DEFAULT_PROJECT, workspace_root: str | Path = WORKSPACE_ROOT,
                 workspace: str | Path | None = None, threads: int | None = None,
                 profiles: Path | None = DEFAULT_PROFILES, extra: dict | None = None) -> None:
        self.project = load_project(project)
        super().__init__(clients=self.project.clients, num_threads=threads, workspace_root=str(workspace_root), extra=extra)
        self.workspace = Path(workspace) if workspace is not None else None
        self.profiles = Path(profiles) if profiles is not None else None
        self.last_return_code: int | None = None

    def workspace_of(self, job_id: str) -> Path:
        return (self.workspace or Path(self.workspace_root) / job_id).resolve()

    def simulate(self, job: FedJob) -> int:
        """Check ``job``, prepare the sites and run it; the simulator's return code."""
        workspace = self.workspace_of(job.name)
        with checked_export(job, self.project) as folder:
            imaging, he = uses_imaging(folder), job_encrypts(folder)
        simulator_workspace_policies(self.project, workspace)
        env = {}
        if imaging and self.profiles is not None and self.profiles.is_file():  # the simulator wipes site workspaces
            data_root = workspace.parent / f"{workspace.name}_site_data"
            prepare_imaging(self.profiles, {c: data_root / c for c in self.clients})
            from consortium.flare.executors.segmentation import SITE_DATA_ROOT_ENV

            env[SITE_DATA_ROOT_ENV] = str(data_root)
        if he:  # the simulator has no startup kits: keys for this workspace, plain files
            from consortium.flare.he.site import HE_KEYS_ENV

            env[HE_KEYS_ENV] = str(simulator_he_keys(workspace.parent / f"{workspace.name}_he_keys"))
        with _environ(env):
            rc = job.simulator_run(workspace=str(workspace), clients=list(self.clients), threads=self.num_threads,
                                   gpu=self.gpu_config, log_config=self.log_config)
        self.last_return_code = rc
        return rc

    def deploy(self, job: FedJob) -> str:
        rc = self.simulate(job)
        self.last_run_failed = rc not in (None, 0)
        if self.last_run_failed:
            raise RuntimeError(f"simulation of {job.name} failed with return code {rc}; logs under {self.workspace_of(job.name)}")
        return job.name

    def get_job_result(self, job_id: str, timeout: float = 0.0) -> str | None:
        """The server's run folder (``<workspace>/server/simulate_job``)."""
        return str(self.workspace_of(job_id) / SIMULATION_RESULT)
