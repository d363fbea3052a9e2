"""Issue 21, section 3, at the command line: each bad input with the message it now gets and exit code 2,
and nothing written outside its folder (names, rollback folders, the project.yml reader, a dead server).
The library halves: tests/provisioning/test_provisioning_inputs.py, tests/jobs/test_follow_dead_server.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from consortium.cli.main import main


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


# --- site names ------------------------------------------------------------------------------

@pytest.mark.parametrize("name, why", [
    ("../../x", r"site request: NAME = '\.\./\.\./x': not a valid site name: a site name is letters, digits, '-' and '_' only"),
    ("a/b", r"site request: NAME = 'a/b': not a valid site name"),
    ("x" * 300, r"site request: NAME = 'x{40}\.\.\.': not a valid site name: a site name has at most 64 characters"),
])
def test_site_request_refuses_a_bad_name_and_writes_nothing_anywhere(scratch, project, capsys, name, why):
    before = _tree(scratch)

    rc = main(["site", "request", name, "--org", "O", "--project", str(project.path)])

    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert re.search(why, err), err
    assert _tree(scratch) == before


def test_site_request_refuses_a_bad_org(scratch, project, capsys):
    assert main(["site", "request", "basel", "--org", "a-b", "--project", str(project.path)]) == 2
    assert "site request: --org = 'a-b': not a valid org name" in capsys.readouterr().err
    assert not (scratch / "a" / "b" / "c" / "basel").exists()


# --- models rollback -------------------------------------------------------------------------

def _run_folder(root: Path, name: str) -> Path:
    run = root / "run"
    (run / "app_server" / "config").mkdir(parents=True)
    (run / "meta.json").write_text(json.dumps({"name": name}))
    for side in ("server", "client"):
        (run / "app_server" / "config" / f"config_fed_{side}.json").write_text("{}")
    return run


def test_rollback_refuses_a_job_name_that_leads_out_of_jobs_rollback(tmp_path, monkeypatch, capsys):
    work = tmp_path / "w" / "x" / "y" / "z"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    run = _run_folder(tmp_path, "../../../../tmp/x")
    naive = Path("jobs-rollback") / "../../../../tmp/x_v1"  # the old default folder
    assert not naive.resolve().is_relative_to((work / "jobs-rollback").resolve())
    before = _tree(tmp_path)

    rc = main(["models", "rollback", str(run), "1"])

    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert f"{run / 'meta.json'}: field 'name' = '../../../../tmp/x': not a valid job name" in err
    assert _tree(tmp_path) == before


def test_the_rollback_folder_of_a_good_name_is_under_jobs_rollback(tmp_path, monkeypatch):
    from consortium.admin.models import rollback_folder

    monkeypatch.chdir(tmp_path)
    assert rollback_folder(_run_folder(tmp_path, "heart_fedavg"), 3) == tmp_path / "jobs-rollback" / "heart_fedavg_v3"


# --- the project.yml reader ------------------------------------------------------------------

BAD_PARTICIPANTS = [
    ("participants: null", r"field 'participants' = None: must be a list of participants"),
    ("participants: [server, cleveland]", r"field 'participants\[0\]' = 'server': must be a mapping with name, type and org"),
    ("participants: []", r"field 'participants' = \[\]: must be a list of participants"),
    ("participants: [{name: cleveland, type: client, org: c}]", r"participants: expected one server, found 0"),
    ("participants: [{name: s, type: server, org: c}, {name: ../x, type: client, org: c}]",
     r"field 'participants\[1\]'\.name = '\.\./x': not a valid site name"),
    ("participants: [{name: s, type: server, org: c}, {name: x, type: robot, org: c}]",
     r"field 'participants\[1\]'\.type = 'robot': must be one of"),
    ("participants: [{name: s, type: server, org: c}]\nbuilders: [{path: os.system, args: {command: id}}]",
     r"field 'builders\[0\]\.path' = 'os\.system': not a builder of this consortium"),
]


@pytest.mark.parametrize("body, why", BAD_PARTICIPANTS)
def test_a_bad_project_is_refused_naming_the_file_and_field_and_nothing_is_written(tmp_path, capsys, body, why):

    bad = tmp_path / "project.yml"
    bad.write_text(f"api_version: 3\nname: heart\n{body}\n")
    out = tmp_path / "kits"

    rc = main(["provision", "--project", str(bad), "--output", str(out)])

    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert re.search(re.escape(str(bad)) + r": " + why, err), err
    assert not out.exists()


def test_the_command_line_prints_one_line_for_an_unreachable_server(monkeypatch, capsys):
    from nvflare.fuel.flare_api.api_spec import NoConnection

    from consortium.cli import main as main_module

    def refuse(args):
        raise NoConnection("cannot connect to server")

    monkeypatch.setattr(main_module, "run", refuse)
    assert main(["poc", "status"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("consortium: error: the FLARE server cannot be reached (NoConnection") and err.count("\n") == 1
