"""No traceback reaches the user from any command: every command and subcommand the ``consortium``
parser registers (found by walking it, so a new command is covered without editing this file)
is run with malformed input -- names that try to leave their folder, files and folders that do
not exist, files that are not JSON or YAML -- and must fail (exit 2 with one ``consortium:
error:`` line naming the value; a checker such as ``doctor`` or ``audit verify`` may answer 1 with
its finding), never with a traceback or as a bug (exit 3), write nothing outside the test's
folders, and start nothing (no POC is started here: every workspace given is missing or garbage)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from consortium.cli.main import EXIT_BUG, parser

REPO = Path(__file__).resolve().parents[2]
GARBAGE = '{"name": [unclosed\n  - : : not yaml either\t\x00'
GARBAGE_FILES = ("meta.json", "project.yml", "consortium-poc.json", "request.json", "progress.jsonl",
                 "trail.jsonl", "trail.head.json", "registry.jsonl", "fed_client.json", "fed_server.json",
                 "cert.json", "manifest.json", "scanner_profiles.json")
FILE_ARGS = {"project", "request_zip", "bundle", "profiles", "job", "against"}  # a file, not a folder
OUTPUT_ARGS = {"out", "output", "results", "sim_workspace", "server_storage"}  # where a command would write
BAD_NAME = "../../x"
GOOD = {"site": "cleveland", "name": "basel", "org": "org", "job_id": "no-such-job", "names": "no_such_job",
        "fingerprint": "SHA256:00", "reason": "r"}


def leaf_commands(p: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command words, its parser) for every command that takes no further subcommand."""
    subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, p
    for a in subs:
        for name, sub in a.choices.items():
            yield from leaf_commands(sub, (*path, name))


COMMANDS = {" ".join(words): p for words, p in leaf_commands(parser())}
VARIANTS = ("bad names", "missing paths", "malformed files")


def _value(action: argparse.Action, variant: str, tmp: Path, garbage: Path) -> str | None:
    dest = action.dest
    if action.type is Path or dest in FILE_ARGS | OUTPUT_ARGS:
        if dest in OUTPUT_ARGS and variant != "missing paths":
            return str(tmp / "outputs" / dest)
        if variant == "malformed files":
            return str(garbage / f"{dest}.yml" if dest in FILE_ARGS else garbage / dest)
        return str(tmp / "missing" / dest)
    if action.type in (int, float):
        return "1"
    if action.type is None and isinstance(action, argparse._StoreAction | argparse._AppendAction):
        return BAD_NAME if variant == "bad names" else GOOD.get(dest, "cleveland")
    return None


def argv_for(words: str, p: argparse.ArgumentParser, variant: str, tmp: Path, garbage: Path) -> list[str]:
    """Every positional and every option that takes a value, malformed as ``variant`` says; flags off."""
    argv = words.split()
    for action in p._actions:
        if isinstance(action, argparse._HelpAction | argparse._StoreTrueAction | argparse._StoreConstAction):
            continue
        value = _value(action, variant, tmp, garbage)
        if value is None:
            continue
        argv += [value] if not action.option_strings else [action.option_strings[-1], value]
    return argv


@pytest.fixture(scope="module")
def garbage(tmp_path_factory) -> Path:
    """Files that are not JSON or YAML under every name a command reads, in every folder a
    command looks in (one set for the module; the commands only read it)."""
    folder = tmp_path_factory.mktemp("garbage")
    for dest in FILE_ARGS:
        (folder / f"{dest}.yml").write_text(GARBAGE)
    for name in {a.dest for p in COMMANDS.values() for a in p._actions} - FILE_ARGS - OUTPUT_ARGS:
        for sub in ("", "workspace", "app_server/config", "audit", "startup", "local", "state"):
            (folder / name / sub).mkdir(parents=True, exist_ok=True)
            for f in GARBAGE_FILES:
                (folder / name / sub / f).write_text(GARBAGE)
    return folder


def _files(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*")}


def _snapshot() -> dict:
    """What a command must not change: the repository's top level and its data folders, the
    folders above it, the file system's root, and the home folder."""
    def names(folder: Path) -> set[str]:
        try:
            return set(os.listdir(folder))
        except OSError:
            return set()

    files = {k: v for d in ("jobs", "provisioning", "poc_workspace") for k, v in _files(REPO / d).items()}
    return {"top": names(REPO), "parent": names(REPO.parent), "grandparent": names(REPO.parent.parent),
            "root": names(Path("/")), "home": names(Path.home()), "files": files}


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    work = tmp_path / "cwd" / "a" / "b"
    work.mkdir(parents=True)
    (tmp_path / "tmp").mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.setenv("CONSORTIUM_POC_WORKSPACE", str(tmp_path / "missing" / "poc"))
    monkeypatch.delenv("CONSORTIUM_TRACEBACK", raising=False)
    return tmp_path


def test_the_walk_finds_every_command():
    assert len(COMMANDS) >= 28
    assert {"poc up", "models rollback", "incident rollback", "site request", "site approve", "site package", "site add",
            "site revoke", "audit verify", "job submit", "job validate", "provision", "job export", "kit doctor"} <= set(COMMANDS)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("words", sorted(COMMANDS))
def test_a_command_with_malformed_input_fails_with_one_clear_line_and_writes_nothing_outside(
        words, variant, sandbox, garbage, capsys):
    from consortium.cli.main import main

    argv = argv_for(words, COMMANDS[words], variant, sandbox, garbage)
    before, garbage_before = _snapshot(), _files(garbage)

    try:
        rc = main(argv)
    except SystemExit as e:  # argparse refusing an argument: its usage line, exit 2
        rc = e.code

    out, err = capsys.readouterr()
    said = f"{argv}: exit {rc}\n{out}\n{err}"
    assert rc not in (0, EXIT_BUG), said  # 2: refused; 1: a checker (doctor, audit verify) found the input faulty
    assert "Traceback" not in out + err and "internal error" not in err, said
    if rc == 2 and not err.startswith("usage:"):
        assert err.strip().splitlines()[-1].startswith("consortium: error: "), said
    given = [a for a in argv[len(words.split()):] if not a.startswith("-") and not a.isdigit()]
    assert any(value in out + err for value in given), f"the message names none of the values given: {said}"
    assert _snapshot() == before and _files(garbage) == garbage_before
    assert not (sandbox / "x").exists() and not (sandbox / "cwd" / "x").exists()
    assert not (sandbox / "tmp" / "x.yml").exists() and list((sandbox / "tmp").iterdir()) == []


def test_the_installed_entry_point_prints_the_line_without_a_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO / "custom")}
    env.pop("CONSORTIUM_TRACEBACK", None)
    proc = subprocess.run([sys.executable, "-m", "consortium", "site", "request", "../../x", "--org", "O",
                           "--project", str(tmp_path / "missing.yml")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.strip() == ("consortium: error: site request: NAME = '../../x': not a valid site name: a site "
                                   "name is letters, digits, '-' and '_' only (FLARE's rule)")
    assert sorted(os.listdir(tmp_path)) == []


def test_a_bug_is_one_line_unless_the_traceback_is_asked_for(monkeypatch, capsys):
    from consortium.cli import main as main_module

    def bug(args):
        raise KeyError("oops")

    monkeypatch.setattr(main_module, "run", bug)
    assert main_module.main(["poc", "status"]) == 3
    assert "internal error KeyError: 'oops' (a bug; run again with CONSORTIUM_TRACEBACK=1" in capsys.readouterr().err
    monkeypatch.setenv("CONSORTIUM_TRACEBACK", "1")
    with pytest.raises(KeyError):
        main_module.main(["poc", "status"])
