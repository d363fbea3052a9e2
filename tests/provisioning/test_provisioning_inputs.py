"""Issue 21, section 3, in provisioning: a request name that would leave its folder (the attack,
with the check off), every secret of a provisioned workspace owner-only, and a project FLARE refuses
leaving no output folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from consortium.fileio import is_secret
from consortium.provisioning.distributed import request as distributed
from consortium.provisioning.project import ConfigurationError, Project
from consortium.provisioning.provision import provision


def test_without_the_name_check_the_request_writes_outside_its_folder(scratch, project, monkeypatch):
    """The attack as the adversarial run found it: with the check (and path_under) off, the
    participant file lands two folders up before FLARE refuses the name."""
    monkeypatch.setattr(distributed, "check_name", lambda kind, value, where: value)
    monkeypatch.setattr(distributed, "path_under", lambda root, *parts: Path(root).joinpath(*parts))

    with pytest.raises(distributed.ProvisioningError):
        distributed.request_site("../../x", "O", scratch / "out", project)

    assert (scratch / "t" / "x.yml").is_file()  # outside the temporary folder it was meant for


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
