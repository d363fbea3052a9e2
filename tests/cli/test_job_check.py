"""Job folders are checked before submission; every error names file, field and value."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import JOBS
from consortium.cli.job_check import check_job
from consortium.cli.kits import ConfigurationError

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


@pytest.mark.parametrize("name", ["heart_fedavg", "heart_fedprox", "heart_fednova", "heart_fedavg_dp_update",
                                  "heart_fedprox_dp", "seg_fedavg_dp"])
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
    from consortium.cli.job_check import AllowList
    from consortium.cli.kits import Project

    return AllowList.of_project(Project.load(PROJECT_FILE))


@pytest.mark.parametrize("name", ["heart_fedavg", "heart_fedprox", "heart_fednova", "seg_fedavg", "seg_fedprox", "seg_fednova",
                                  "heart_fedavg_dp_update", "heart_fedprox_dp", "seg_fedavg_dp"])
def test_shipped_jobs_use_only_allowed_classes(name, allowed):
    check_job(JOBS / name, sites=SITES, allowed=allowed)


def test_an_executor_outside_the_allow_list_is_refused_naming_it_and_the_list(job, allowed):
    client = job / "app" / "config" / "config_fed_client.json"
    _edit(client, lambda d: d["executors"][0]["executor"].update(path="os.system"))
    with pytest.raises(ConfigurationError, match=r"executors\[0\]\.executor\.path = 'os\.system' refused: not on the class "
                                                 r"allow-list \(.*class_allow_list\.json\)"):
        check_job(job, sites=SITES, allowed=allowed)


def test_allow_list_admits_exact_entries_only_and_a_prefix_admits_nothing():
    from consortium.cli.job_check import AllowList

    allowed = AllowList(None, ("consortium.", "consortium.flare.round_aggregator.RoundAggregator"))
    assert allowed.admits("consortium.flare.round_aggregator.RoundAggregator")
    assert not allowed.admits("consortium.cli.main.main")
    assert not allowed.admits("consortium.flare.round_aggregator.RoundAggregator.x")
    assert not allowed.admits("consortium.")
