"""Job folders are checked before submission; every error names file, field and value."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from conftest import JOBS
from consortium.jobs.validate import check_job
from consortium.provisioning.project import ConfigurationError
from consortium.recipes.catalogue import CONFIGS

SITES = ["cleveland", "hungary", "switzerland", "va-long-beach"]


@pytest.fixture
def job(tmp_path):
    dst = tmp_path / "heart_fedavg"
    shutil.copytree(JOBS / "heart_fedavg", dst)
    return dst


def _edit(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


# every job of the recipe catalogue, the *_he jobs included (they were left out of a hand-kept list)
CATALOGUE = [config.name for config in CONFIGS]


def test_the_catalogue_has_the_encrypted_jobs():
    assert {"heart_fedprox_he", "heart_fednova_he", "seg_fedavg_he"} <= set(CATALOGUE)


@pytest.mark.parametrize("name", CATALOGUE)
def test_shipped_jobs_are_valid(name):
    assert check_job(JOBS / name, sites=SITES)["name"] == name


def test_missing_config_file_is_named(job):
    (job / "app" / "config" / "config_fed_client.json").unlink()
    with pytest.raises(ConfigurationError, match=r"config_fed_client\.json: file missing"):
        check_job(job)


def test_bad_json_names_file_and_line(job):
    (job / "meta.json").write_text('{"name": "x",\n "deploy_map": }')
    with pytest.raises(ConfigurationError, match=r"meta\.json: not valid JSON \(line 2"):
        check_job(job)


def test_unknown_component_names_field_and_value(job):
    server = job / "app" / "config" / "config_fed_server.json"
    _edit(server, lambda d: d["components"][2].update(path="consortium.flare.nope.Aggregator"))
    with pytest.raises(ConfigurationError, match=r"config_fed_server\.json: field components\[2\]\.path = 'consortium\.flare\.nope"):
        check_job(job)


def test_unknown_nested_model_class_is_found(job):
    server = job / "app" / "config" / "config_fed_server.json"
    _edit(server, lambda d: d["components"][0]["args"]["model"].update(path="consortium.learning.tabular.Nope"))
    with pytest.raises(ConfigurationError, match=r"components\[0\]\.args\.model\.path = 'consortium\.learning\.tabular\.Nope'"):
        check_job(job)


def test_min_clients_larger_than_consortium_is_refused(job):
    server = job / "app" / "config" / "config_fed_server.json"
    _edit(server, lambda d: d["workflows"][1]["args"].update(min_clients=5))
    with pytest.raises(ConfigurationError, match=r"workflows\[1\]\.args\.min_clients = 5 .*(larger than|at most) the consortium"):
        check_job(job, sites=SITES)


def test_job_carrying_code_is_refused(job):
    (job / "app" / "custom").mkdir()
    with pytest.raises(ConfigurationError, match="jobs carry no code"):
        check_job(job)


def test_site_epochs_naming_a_site_outside_the_consortium_is_refused(job):
    client = job / "app" / "config" / "config_fed_client.json"
    _edit(client, lambda d: d["executors"][0]["executor"]["args"].update(site_epochs={"clevland": 5, "hungary": 3}))
    with pytest.raises(ConfigurationError, match=r"executors\[0\]\.executor\.args\.site_epochs names \[?'clevland'"):
        check_job(job, sites=SITES)


def test_site_epochs_of_consortium_sites_pass(job):
    client = job / "app" / "config" / "config_fed_client.json"
    _edit(client, lambda d: d["executors"][0]["executor"]["args"].update(site_epochs={"cleveland": 5}))
    assert check_job(job, sites=SITES)["name"] == "heart_fedavg"


@pytest.fixture(scope="module")
def allowed():
    from conftest import PROJECT_FILE
    from consortium.jobs.validate import AllowList
    from consortium.provisioning.project import Project

    return AllowList.of_project(Project.load(PROJECT_FILE))


@pytest.mark.parametrize("name", CATALOGUE)
def test_shipped_jobs_use_only_allowed_classes(name, allowed):
    check_job(JOBS / name, sites=SITES, allowed=allowed)


def test_an_executor_outside_the_allow_list_is_refused_naming_it_and_the_list(job, allowed):
    client = job / "app" / "config" / "config_fed_client.json"
    _edit(client, lambda d: d["executors"][0]["executor"].update(path="os.system"))
    with pytest.raises(ConfigurationError, match=r"executors\[0\]\.executor\.path = 'os\.system' refused: not on the class "
                                                 r"allow-list \(.*class_allow_list\.json\)"):
        check_job(job, sites=SITES, allowed=allowed)


def test_allow_list_admits_exact_entries_only_and_a_prefix_admits_nothing():
    from consortium.jobs.validate import AllowList

    allowed = AllowList(None, ("consortium.", "consortium.flare.aggregators.round.RoundAggregator"))
    assert allowed.admits("consortium.flare.aggregators.round.RoundAggregator")
    assert not allowed.admits("consortium.cli.main.main")
    assert not allowed.admits("consortium.flare.aggregators.round.RoundAggregator.x")
    assert not allowed.admits("consortium.")


def _meta(job, change):
    _edit(job / "meta.json", change)


@pytest.mark.parametrize("app", ["../..", "../heart_fedprox", "/etc", "app/../..", "."])
def test_a_deploy_map_app_that_is_a_path_is_refused_before_anything_is_read(job, app):
    outside = job.parent / "outside"
    (outside / "config").mkdir(parents=True)
    (outside / "config" / "config_fed_server.json").write_text("not json")  # would fail differently if read
    _meta(job, lambda m: m.update(deploy_map={app: ["@ALL"]}))
    with pytest.raises(ConfigurationError, match=rf"meta\.json: field deploy_map names the app {re.escape(repr(app))}: "
                                                 r"an app is a plain folder name of the job .*never a path"):
        check_job(job, sites=SITES)


def test_a_deploy_map_naming_an_unknown_site_is_refused_naming_it(job):
    _meta(job, lambda m: m.update(deploy_map={"app": ["server", "cleveland", "mayo"]}))
    with pytest.raises(ConfigurationError, match=r"field deploy_map\.app names \['mayo'\], not sites of this consortium"):
        check_job(job, sites=SITES)


def test_a_deploy_map_whose_sites_are_not_a_list_is_refused(job):
    _meta(job, lambda m: m.update(deploy_map={"app": "server"}))
    with pytest.raises(ConfigurationError, match=r"field deploy_map\.app = 'server' must be a list of site names"):
        check_job(job, sites=SITES)


def test_a_file_over_the_size_limit_is_refused_naming_it(job):
    from consortium.job_content import MAX_MODEL_BYTES

    big = job / "app" / "config" / "weights.bin"
    with big.open("wb") as f:
        f.truncate(200 * 1024 * 1024)  # sparse: nothing is written or read
    with pytest.raises(ConfigurationError, match=r"weights\.bin: refused: a job app carries configuration only"):
        check_job(job, sites=SITES)
    big.rename(job / "weights.bin")
    with pytest.raises(ConfigurationError, match=rf"weights\.bin: not an app .*\(209715200 bytes, over the limit of {MAX_MODEL_BYTES}\)"):
        check_job(job, sites=SITES)


def test_a_yaml_file_in_the_app_is_refused_naming_it(job):
    (job / "app" / "config" / "project.yml").write_text("builders: [{path: os.system}]\n")
    with pytest.raises(ConfigurationError, match=r"config/project\.yml: refused: a job app carries configuration only"):
        check_job(job, sites=SITES)


def test_an_executor_that_is_not_an_object_is_refused_not_a_crash(job):
    client = job / "app" / "config" / "config_fed_client.json"
    _edit(client, lambda d: d["executors"][0].update(executor="not-a-dict"))
    with pytest.raises(ConfigurationError, match=r"config_fed_client\.json: .*executors\[0\]\.executor"):
        check_job(job, sites=SITES)


def test_a_path_into_a_main_module_is_refused_without_running_it(job, capsys):
    client = job / "app" / "config" / "config_fed_client.json"
    _edit(client, lambda d: d["executors"][0]["executor"].update(path="consortium.__main__.X"))
    with pytest.raises(ConfigurationError, match=r"executors\[0\]\.executor\.path = 'consortium\.__main__\.X' refused: .*no '__main__'"):
        check_job(job, sites=SITES)
    assert capsys.readouterr().out == ""  # the CLI did not run (it prints its usage)
