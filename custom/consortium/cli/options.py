"""The options several command groups share, and a group's parser with its example."""

from __future__ import annotations

import argparse
from pathlib import Path

from consortium.defaults import DEFAULT_PROJECT, default_workspace
from consortium.poc.site_data import DEFAULT_PROFILES


def group(sub, name: str, text: str, example: str) -> argparse.ArgumentParser:
    """The ``consortium NAME`` parser; its ``--help`` ends with ``example``."""
    return sub.add_parser(name, help=text, description=text, epilog=f"example:\n{example}",
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def actions(p: argparse.ArgumentParser):
    return p.add_subparsers(dest="action", required=True)


def project(p: argparse.ArgumentParser, text: str = "project.yml") -> None:
    p.add_argument("--project", type=Path, default=DEFAULT_PROJECT, help=f"{text} (default: %(default)s)")


def workspace(p: argparse.ArgumentParser) -> None:
    """``--workspace`` (the POC's) and ``--project``."""
    p.add_argument("--workspace", type=Path, default=default_workspace(),
                   help="POC workspace (default: $CONSORTIUM_POC_WORKSPACE or poc_workspace/state)")
    project(p)


def profiles(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profiles", type=Path, default=DEFAULT_PROFILES,
                   help="scanner profiles from which each site makes its imaging data (default: %(default)s)")


def results(p: argparse.ArgumentParser, timeout: bool = False) -> None:
    p.add_argument("--results", type=Path, default=Path("results"), help="where results are downloaded (default: %(default)s)")
    if timeout:
        p.add_argument("--timeout", type=float, default=900.0, help="seconds before the job is aborted (default: %(default)s)")
