"""Kits provisioned from project.yml carry the consortium's site policies."""

from __future__ import annotations

import json

import pytest

from consortium.cli.kits import ConfigurationError, Project, provision


@pytest.fixture(scope="module")
def kits(project, tmp_path_factory):
    return provision(project, tmp_path_factory.mktemp("kits"), poc=True), project


def test_every_site_admits_the_consortium_package_and_keeps_enforcement(kits):
    prod, project = kits
    for site in ["server", *project.clients]:
        res = json.loads((prod / site / "local" / "resources.json").read_text())
        assert res["class_list_enforcement_mode"] == "enforce"
        assert "consortium." in res["class_allow_list"]
        assert "nvflare.app_common.workflows.scatter_and_gather.ScatterAndGather" in res["class_allow_list"]


def test_no_role_may_submit_custom_code(kits):
    prod, project = kits
    for site in ["server", *project.clients]:
        authz = json.loads((prod / site / "local" / "authorization.json").read_text())
        assert {p.get("byoc") for p in authz["permissions"].values() if isinstance(p, dict)} <= {"none", None}


def test_server_job_storage_lives_in_the_workspace_not_tmp_nvflare(kits):
    prod, _ = kits
    text = (prod / "server" / "local" / "resources.json").read_text()
    assert "/tmp/nvflare" not in text
    assert str(prod.parent.parent / "jobs-storage") in text


def test_sites_and_roles_come_from_project_yml(kits):
    prod, project = kits
    assert sorted(project.clients) == ["cleveland", "hungary", "switzerland", "va-long-beach"]
    assert project.project_admin == "admin@consortium.org"
    for name in [*project.clients, "server", "admin@consortium.org", "scientist@cleveland-clinic.org"]:
        assert (prod / name / "startup" / "rootCA.pem").is_file()


def test_project_without_participants_is_refused(tmp_path):
    bad = tmp_path / "project.yml"
    bad.write_text("name: x\n")
    with pytest.raises(ConfigurationError, match=r"project\.yml: needs top-level fields"):
        Project.load(bad)
