"""Issue 21, section 3: each bad input with the message it now gets, and nothing written outside
its folder (names, rollback folders, secrets' modes, the project.yml reader, a dead server)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest
import yaml

from consortium.cli.main import main
from consortium.fileio import is_secret
from consortium.provisioning.distributed import request as distributed
from consortium.provisioning.project import ConfigurationError, Project
from consortium.provisioning.provision import provision


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


# --- site names ------------------------------------------------------------------------------

@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A working folder three levels down, and temporary files under tmp_path too, so any
    write that escapes with ``../..`` still lands where the test can see it."""
    cwd = tmp_path / "a" / "b" / "c"
    cwd.mkdir(parents=True)
    (tmp_path / "t" / "u").mkdir(parents=True)
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "t" / "u"))
    return tmp_path


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


def test_without_the_name_check_the_request_writes_outside_its_folder(scratch, project, monkeypatch):
    """The attack as the adversarial run found it: with the check (and path_under) off, the
    participant file lands two folders up before FLARE refuses the name."""
    monkeypatch.setattr(distributed, "check_name", lambda kind, value, where: value)
    monkeypatch.setattr(distributed, "path_under", lambda root, *parts: Path(root).joinpath(*parts))

    with pytest.raises(distributed.ProvisioningError):
        distributed.request_site("../../x", "O", scratch / "out", project)

    assert (scratch / "t" / "x.yml").is_file()  # outside the temporary folder it was meant for


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


# --- secrets ---------------------------------------------------------------------------------

def _modes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mode & 0o777
            for p in root.rglob("*") if p.is_file() and not p.is_symlink() and is_secret(p)}


@pytest.fixture
def umask_022():
    old = os.umask(0o022)  # a common default: files readable by everyone unless made otherwise
    yield
    os.umask(old)


def test_every_secret_of_a_provisioned_workspace_is_owner_only(project, tmp_path, umask_022):
    ws = tmp_path / "ws"
    provision(project, ws, poc=False)

    modes = _modes(ws)
    kits, state = f"{project.name}/prod_00", f"{project.name}/state"
    expected = {f"{state}/cert.json", f"{state}/he_context.tenseal", f"{state}/he_server_context.tenseal",
                f"{kits}/server/startup/server.key", f"{kits}/server/startup/server_context.tenseal",
                *(f"{kits}/{site}/startup/{f}" for site in project.clients
                  for f in ("client.key", "client_context.tenseal", "server_context.tenseal"))}
    assert expected <= set(modes)
    assert {m: oct(v) for m, v in modes.items() if v != 0o600} == {}
    assert json.loads((ws / state / "cert.json").read_text())["root_pri_key"].startswith("-----BEGIN")


def test_without_the_umask_and_the_mode_fix_flares_cert_json_is_readable_by_everyone(project, tmp_path, umask_022,
                                                                                       monkeypatch):
    import contextlib

    from consortium.provisioning import provision as kits
    monkeypatch.setattr(kits, "owner_only", contextlib.nullcontext)
    monkeypatch.setattr(kits, "restrict_secrets", lambda root: [])
    ws = tmp_path / "ws"
    provision(project, ws, poc=False)

    assert (ws / project.name / "state" / "cert.json").stat().st_mode & 0o777 == 0o644  # root CA key for all to read


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


def test_a_project_flare_refuses_leaves_no_output_folder(project, tmp_path):
    config = {**project.config, "api_version": 2}
    bad = tmp_path / "p" / "project.yml"
    bad.parent.mkdir()
    bad.write_text(yaml.safe_dump(config))
    (bad.parent / "site_policies").symlink_to(project.policies_dir)
    out = tmp_path / "kits"

    with pytest.raises(ConfigurationError, match=rf"{bad}: refused by FLARE's provisioner: API version expected 3 or 4"):
        provision(Project.load(bad), out, poc=False)
    assert not out.exists()


# --- a server that dies mid-job ----------------------------------------------------------------

class _DeadSession:
    def get_job_meta(self, job_id):
        from nvflare.fuel.flare_api.api_spec import NoConnection

        raise NoConnection("cannot connect to server")

    def close(self):
        raise ConnectionError("gone")


def _state(tmp_path, procs=()):
    from consortium.poc.state import PocState

    return PocState(str(tmp_path), str(tmp_path / "kits"), "heart", 8002, "admin@x.org", ["a", "b"], list(procs))


def test_following_a_job_whose_server_stops_answering_says_so_and_names_resume(tmp_path):
    from consortium.jobs.submit import follow
    from consortium.poc.lifecycle import PocError

    with pytest.raises(PocError) as e:
        follow(_DeadSession(), _state(tmp_path), "job-42", 2, tmp_path / "results", timeout=5, echo=lambda _: None)

    text = str(e.value)
    assert "job job-42: the FLARE server is unreachable (NoConnection: cannot connect to server)" in text
    assert "`consortium job resume job-42`" in text
    assert not (tmp_path / "results").exists()


def test_a_dead_server_process_is_noticed_before_the_admin_api_is_asked(tmp_path):
    from consortium.jobs.submit import follow
    from consortium.poc.lifecycle import PocError
    from consortium.poc.state import Proc

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    created = psutil.Process(proc.pid).create_time()
    proc.wait()

    class Unused:
        def get_job_meta(self, job_id):
            raise AssertionError("asked a dead server")

    with pytest.raises(PocError, match=r"unreachable; .*`consortium job resume job-7`"):
        follow(Unused(), _state(tmp_path, [Proc("server", proc.pid, created)]), "job-7", 2, tmp_path, echo=lambda _: None)


def test_the_command_line_prints_one_line_for_an_unreachable_server(monkeypatch, capsys):
    from nvflare.fuel.flare_api.api_spec import NoConnection

    from consortium.cli import main as main_module

    def refuse(args):
        raise NoConnection("cannot connect to server")

    monkeypatch.setattr(main_module, "run", refuse)
    assert main(["poc", "status"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("consortium: error: the FLARE server cannot be reached (NoConnection") and err.count("\n") == 1
