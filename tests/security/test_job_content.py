"""Job apps carry configuration only: the pure rule (consortium.job_content) and FLARE's
app_validator adapter built from it, with the site's own allow-list."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import JOBS
from consortium.flare.job_content import JobContentValidator
from consortium.job_content import MAX_CONFIG_BYTES, MAX_MODEL_BYTES, JobContentRefused, check_app_content


@pytest.fixture
def app(tmp_path) -> Path:
    return Path(shutil.copytree(JOBS / "heart_fedavg" / "app", tmp_path / "app"))


@pytest.mark.parametrize("job", sorted(p.name for p in JOBS.iterdir() if (p / "app").is_dir()))
def test_every_shipped_app_passes(job):
    check_app_content(JOBS / job / "app")


def test_flares_job_signing_files_pass(app):
    for folder in (app, app / "config"):
        (folder / ".__nvfl_sig.json").write_text("{}")
        (folder / ".__nvfl_submitter.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    check_app_content(app)


def test_a_rollback_app_as_flares_submit_signs_it_passes(app):
    """`nvflare job submit` writes its signing files into every folder of the app, the resume/ of a
    rollback job included (a POC rollback was refused for resume/.__nvfl_sig.json)."""
    server = app / "config" / "config_fed_server.json"
    config = json.loads(server.read_text())
    next(c for c in config["components"] if c["id"] == "persistor")["args"].update(resume_from="resume/v3.npz")
    server.write_text(json.dumps(config))
    (app / "resume").mkdir()
    (app / "resume" / "v3.npz").write_bytes(b"x")
    for folder in (app, app / "config", app / "resume"):
        (folder / ".__nvfl_sig.json").write_text("{}")
        (folder / ".__nvfl_submitter.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    check_app_content(app)


def test_a_signing_file_outside_the_apps_folders_is_refused(app):
    (app / "scripts").mkdir()
    (app / "scripts" / ".__nvfl_sig.json").write_text("{}")
    with pytest.raises(JobContentRefused, match=r"scripts/\.__nvfl_sig\.json: refused"):
        check_app_content(app)


@pytest.mark.parametrize("rel", ["config/project.yml", "config/run.sh", "run.py", "config/extra/config_fed_client.json",
                                 "data.csv", "resume/notes.txt"])
def test_any_other_file_is_refused_naming_it(app, rel):
    (app / rel).parent.mkdir(parents=True, exist_ok=True)
    (app / rel).write_text("x")
    with pytest.raises(JobContentRefused, match=rf"{app / rel}: refused: a job app carries configuration only"):
        check_app_content(app)


def test_custom_code_is_refused(app):
    (app / "custom").mkdir()
    (app / "custom" / "x.py").write_text("print(1)\n")
    with pytest.raises(JobContentRefused, match=r"BYOC not permitted: .*custom: jobs carry no code"):
        check_app_content(app)


def test_a_link_is_refused(app, tmp_path):
    (tmp_path / "elsewhere.json").write_text("{}")
    os.symlink(tmp_path / "elsewhere.json", app / "config" / "link.json")
    with pytest.raises(JobContentRefused, match=r"link\.json: refused: a link"):
        check_app_content(app)


def test_a_config_over_the_size_limit_is_refused_naming_it_and_its_size(app):
    path = app / "config" / "config_fed_client.json"
    with path.open("ab") as f:
        f.truncate(MAX_CONFIG_BYTES + 1)  # sparse: the size is read from the directory, nothing is opened
    with pytest.raises(JobContentRefused, match=rf"config_fed_client\.json: {MAX_CONFIG_BYTES + 1} bytes, over the limit"):
        check_app_content(app)


def test_a_resume_model_named_by_the_server_config_passes_and_its_size_is_bounded(app):
    (app / "resume").mkdir()
    model = app / "resume" / "v3.npz"
    model.write_bytes(b"x")
    with pytest.raises(JobContentRefused, match=r"v3\.npz: refused: no resume_from in config_fed_server\.json names it"):
        check_app_content(app)
    server = app / "config" / "config_fed_server.json"
    config = json.loads(server.read_text())
    next(c for c in config["components"] if c["id"] == "persistor")["args"].update(resume_from="resume/v3.npz")
    server.write_text(json.dumps(config))
    check_app_content(app)
    with model.open("ab") as f:
        f.truncate(MAX_MODEL_BYTES + 1)
    with pytest.raises(JobContentRefused, match=r"v3\.npz: \d+ bytes, over the limit"):
        check_app_content(app)


def test_a_config_naming_a_class_off_the_list_is_refused_without_importing_it(app):
    path = app / "config" / "config_fed_server.json"
    config = json.loads(path.read_text())
    config["components"][0]["args"]["model"]["path"] = "evil_never_imported.Model"
    path.write_text(json.dumps(config))
    with pytest.raises(JobContentRefused, match=r"field components\[0\]\.args\.model\.path = 'evil_never_imported\.Model' "
                                                r"refused: not on the class allow-list.*\(role model\)"):
        check_app_content(app)


def _site_ws(tmp_path: Path, app: Path, allow: list[str] | None) -> Path:
    """``app`` deployed as FLARE does: <workspace>/<job id>/app_<site>, with the site's resources.json."""
    ws = tmp_path / "site_ws"
    (ws / "local").mkdir(parents=True)
    if allow is not None:
        (ws / "local" / "resources.json").write_text(json.dumps({"class_allow_list": allow}))
    return Path(shutil.copytree(app, ws / "1234-job" / "app_cleveland"))


def test_the_validator_uses_the_sites_own_list(app, tmp_path):
    from consortium.allowlist import DEFAULT_ALLOWED

    deployed = _site_ws(tmp_path, app, sorted(DEFAULT_ALLOWED))
    assert JobContentValidator().validate(str(deployed)) == ("", {})
    short = sorted(DEFAULT_ALLOWED - {"consortium.flare.executors.tabular.TabularExecutor"})
    (tmp_path / "site_ws" / "local" / "resources.json").write_text(json.dumps({"class_allow_list": short}))
    err, _ = JobContentValidator().validate(str(deployed))
    assert err.startswith("job content refused: ") and "'consortium.flare.executors.tabular.TabularExecutor' refused" in err
    assert "site_ws/local/resources.json" in err


def test_a_site_without_a_readable_list_admits_no_job(app, tmp_path):
    deployed = _site_ws(tmp_path, app, None)
    err, _ = JobContentValidator().validate(str(deployed))
    assert "no resources.json" in err and "admits no job" in err
