"""Default paths of the command line that work from any directory: a path relative to the current
directory when it exists there, else the same path in the repository this package was installed
from (``pip install -e``), else the relative path (whose error then names it). Found paths are
made absolute when the command starts."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def default_path(relative: str) -> Path:
    here = Path(relative)
    if here.exists():
        return here.resolve()
    in_repo = REPO_ROOT / relative
    return in_repo if in_repo.exists() else here
