"""Helpers for the benchmarks: job variants written to a scratch folder."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JOBS = REPO / "jobs"
# ``--smoke`` (or BENCH_SMOKE=1, which run_all.py --smoke sets for every benchmark): the smallest
# size of each benchmark, to show it still runs end to end; its tables and plots go to
# $BENCH_RESULTS (else a new temporary folder), never to benchmarks/results/.
SMOKE = "--smoke" in sys.argv or os.environ.get("BENCH_SMOKE") == "1"
if "--smoke" in sys.argv:
    sys.argv.remove("--smoke")  # the benchmarks' own argument parsers do not know it
RESULTS = Path(os.environ.get("BENCH_RESULTS") or tempfile.mkdtemp(prefix="bench_smoke_")) if SMOKE \
    else REPO / "benchmarks" / "results"


SMOKE_ROUNDS = 3  # a job variant's rounds at most under --smoke (round_overhead skips the first)


def size(full, smoke):
    """A benchmark's size: ``full`` normally, ``smoke`` under --smoke."""
    return smoke if SMOKE else full


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
    if SMOKE:  # every job variant at most SMOKE_ROUNDS rounds, one local (and personalisation) epoch
        path = dst / "app" / "config" / "config_fed_server.json"
        config = json.loads(path.read_text())
        for wf in config.get("workflows", []):
            if "num_rounds" in wf.get("args", {}):
                wf["args"]["num_rounds"] = min(wf["args"]["num_rounds"], SMOKE_ROUNDS)
        path.write_text(json.dumps(config, indent=2))
        path = dst / "app" / "config" / "config_fed_client.json"
        config = json.loads(path.read_text())
        for executor in config.get("executors", []):
            args = executor.get("executor", {}).get("args", {})
            for key in ("epochs", "personalise_epochs"):
                if isinstance(args.get(key), int):
                    args[key] = min(args[key], 1)
        path.write_text(json.dumps(config, indent=2))
    return dst


def workflow_args(config: dict, workflow_id: str) -> dict:
    return next(w for w in config["workflows"] if w["id"] == workflow_id)["args"]


def executor_args(config: dict) -> dict:
    return config["executors"][0]["executor"]["args"]


def project_admitting(base, extra_classes: list[str], folder: Path):
    """A copy of ``base`` (a Project) in ``folder`` whose site policies also admit ``extra_classes``
    as ``extra_allowed``: a benchmark's comparison with FLARE's own classes runs in its own policy
    copy, never with the shipped one widened."""
    import copy

    import yaml

    from consortium.provisioning.project import POLICIES_DIR, Project

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(base.policies_dir, folder / POLICIES_DIR)
    allow_file = folder / POLICIES_DIR / "class_allow_list.json"
    allow = json.loads(allow_file.read_text())
    allow["extra_allowed"] = [*allow.get("extra_allowed", []), *extra_classes]
    allow_file.write_text(json.dumps(allow, indent=2) + "\n")
    (folder / "project.yml").write_text(yaml.safe_dump(copy.deepcopy(base.config), sort_keys=False))
    return Project.load(folder / "project.yml")


def mean_std(values) -> str:
    import numpy as np

    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def provenance() -> list[str]:
    """Which commit, package versions, machine and command made a result."""
    import os
    import platform
    import subprocess
    import sys
    import time
    from importlib.metadata import PackageNotFoundError, version

    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()

    # the results folder is this run's output (a plot may already be written): not a change to the code
    dirty = " (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no", "--", ".",
                                                 ":!benchmarks/results") else ""
    versions = []
    for pkg in ("nvflare", "torch", "monai", "tenseal", "opacus", "numpy", "scikit-learn"):
        try:
            versions.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            pass
    def shown(arg: str) -> str:  # paths inside the repository, relative to its root
        full = os.path.abspath(arg)
        return os.path.relpath(full, REPO) if os.path.exists(full) and full.startswith(str(REPO)) else arg

    command = " ".join([os.path.relpath(sys.executable, REPO) if sys.executable.startswith(str(REPO)) else "python",
                        *map(shown, sys.argv)])
    return [f"Made by `{command}` at commit {git('rev-parse', '--short', 'HEAD')}{dirty}, "
            f"{time.strftime('%Y-%m-%d')}, on {os.cpu_count()} CPU cores ({platform.machine()}), "
            f"Python {platform.python_version()}, {', '.join(versions)}."]


def write_table(name: str, lines: list[str]) -> Path:
    """Write a result table to benchmarks/results/NAME, its provenance first, and print it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    lines = [*provenance(), "", *lines]
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return path
