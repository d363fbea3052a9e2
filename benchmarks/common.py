"""Helpers for the benchmarks: job variants written to a scratch folder."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JOBS = REPO / "jobs"
RESULTS = REPO / "benchmarks" / "results"


def job_variant(name: str, dst: Path, edit_server: Callable[[dict], None] | None = None,
                edit_client: Callable[[dict], None] | None = None) -> Path:
    """Copy ``jobs/name`` to ``dst`` and apply edits to its server/client configs."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(JOBS / name, dst)
    for fname, edit in (("config_fed_server.json", edit_server), ("config_fed_client.json", edit_client)):
        if edit is None:
            continue
        path = dst / "app" / "config" / fname
        config = json.loads(path.read_text())
        edit(config)
        path.write_text(json.dumps(config, indent=2))
    return dst


def workflow_args(config: dict, workflow_id: str) -> dict:
    return next(w for w in config["workflows"] if w["id"] == workflow_id)["args"]


def executor_args(config: dict) -> dict:
    return config["executors"][0]["executor"]["args"]


def mean_std(values) -> str:
    import numpy as np

    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def write_table(name: str, lines: list[str]) -> Path:
    """Write a result table to benchmarks/results/NAME and print it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text("\n".join(lines))
    print("\n".join(lines))
    return path
