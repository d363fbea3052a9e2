"""`consortium demo`: POC up, each job submitted, followed and reported, POC down."""

from __future__ import annotations

from pathlib import Path

from consortium.cli import options
from consortium.defaults import DEFAULT_JOBS
from consortium.provisioning.project import Project

EXAMPLE = "  consortium demo --job jobs/heart_fedavg"


def add_parser(sub) -> None:
    p = options.group(sub, "demo", "POC up, submit the jobs, report, POC down", EXAMPLE)
    options.workspace(p)
    p.add_argument("--job", type=Path, action="append", default=None,
                   help=f"job to run (repeatable; default: {' and '.join(str(j) for j in DEFAULT_JOBS)})")
    p.add_argument("--port", type=int, default=None, help="server port (default: project.yml's fed_learn_port)")
    options.results(p)
    options.profiles(p)


def run(args) -> int:
    from consortium.jobs.demo import demo

    demo(Project.load(args.project), args.workspace, args.job, args.results, port=args.port, profiles=args.profiles)
    return 0
