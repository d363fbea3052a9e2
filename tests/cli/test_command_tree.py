"""The command tree: groups as `nvflare poc|job|provision` has them, each group's --help ending
with an example of its own commands, no command twice, and one rollback handler under two groups."""

from __future__ import annotations

import argparse

import pytest

from consortium.cli import incident, models
from consortium.cli.main import GROUPS, parser

TREE = {"demo": set(), "poc": {"up", "status", "down", "kill", "restart"},
        "job": {"validate", "submit", "simulate", "report", "export", "resume"}, "provision": set(),
        "site": {"request", "approve", "package", "add", "revoke"}, "incident": {"freeze", "thaw", "quarantine", "rollback"},
        "models": {"list", "best", "rollback"}, "audit": {"verify", "export-heads"}, "kit": {"certs", "doctor"}}


def _choices(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(subs[0].choices) if subs else {}


def test_the_top_level_lists_the_groups_only():
    groups = _choices(parser())
    assert set(groups) == set(TREE) == set(GROUPS)
    assert {name: set(_choices(p)) for name, p in groups.items()} == TREE


@pytest.mark.parametrize("group", sorted(TREE))
def test_each_group_s_help_ends_with_an_example_of_it(group, capsys):
    with pytest.raises(SystemExit) as done:
        parser().parse_args([group, "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0
    example = out[out.index("\nexample:\n"):]
    assert f"consortium {group}" in example


def test_models_rollback_and_incident_rollback_are_one_handler(monkeypatch):
    called = []
    monkeypatch.setattr(models, "rollback", lambda args: called.append((args.command, args.run.name, args.version)) or 0)
    for group in ("models", "incident"):
        args = parser().parse_args([group, "rollback", "results/job-1", "3"])
        assert GROUPS[group].run(args) == 0
    assert called == [("models", "job-1", 3), ("incident", "job-1", 3)]
    assert incident.models is models
