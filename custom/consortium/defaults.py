"""Default paths of the command line that work from any directory: a path relative to the current
directory when it exists there, else the same path in the repository this package was installed
from (``pip install -e``), else the relative path (whose error then names it). Found paths are
made absolute when the command starts."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def default_path(relative: str) -> Path:
    here = Path(relative)
    if here.exists():
        return here.resolve()
    in_repo = REPO_ROOT / relative
    return in_repo if in_repo.exists() else here


def default_workspace() -> Path:
    """The POC workspace: ``$CONSORTIUM_POC_WORKSPACE``, else ``poc_workspace/state``."""
    env = os.environ.get("CONSORTIUM_POC_WORKSPACE")
    return Path(env) if env else default_path("poc_workspace") / "state"


DEFAULT_PROJECT = default_path("provisioning/project.yml")
DEFAULT_WORKSPACE = default_workspace()
JOBS_DIR = default_path("jobs")  # the recipes' export (`consortium job export`)
DEFAULT_JOBS = (default_path("jobs/heart_fedprox"), default_path("jobs/seg_fedavg"))  # what `consortium demo` runs
